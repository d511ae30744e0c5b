"""The batched RTP media engine: every SIP call's audio on one task, driven by the worker's shared 20 ms clock.

Per tick it encodes every sending call's outbound frame in one array operation and sends them (that is what is
late or not), then reads the RTP sockets that have datagrams waiting (one poll for all calls, instead of a read
attempt and a would-block error per call), pops each call's due payload from its jitter buffer and decodes them
all in one table lookup per G.711 law.

`tick_observer`, when set, is called after each tick's sending with how late that sending finished (seconds
after the tick's due time): the benchmark's tick-completion figure. Unset, it costs one `is None` per tick.

One call's failure stays that call's: an exception while handling one call's frame (its outbound queue, its
packet, its consumer) leaves the tick at that call only; the call is taken out of the tick, counted in
`leg_errors`, logged through a rate limit and hung up with `EndReason.MEDIA_ERROR`, and the tick goes on with
the next call. (The `try` costs nothing until something raises: it wraps each loop over the calls, not each call.)
"""
from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import Callable
from typing import cast

import numpy as np

from media import g711
from media.end_reason import EndReason
from media.frames import AudioFrame
from media.jitter import MISSING
from media.log_limit import LimitedLog
from media.pacing import MediaClock
from media.tasks import cancel_and_wait
from signalling.sip.leg import SipLeg
from signalling.sip.rtp import FRAME_SAMPLES
from signalling.sip.sdp import Negotiated

log = logging.getLogger(__name__)
_limited = LimitedLog(log)


class RtpMediaEngine:
    def __init__(self, clock: MediaClock) -> None:
        self.clock = clock
        self.legs: list[SipLeg] = []  # the calls with media running
        # Which calls' RTP sockets have datagrams waiting: epoll where there is one; poll() elsewhere.
        self._poller = select.epoll() if hasattr(select, "epoll") else select.poll()
        self._by_fd: dict[int, SipLeg] = {}
        self._task: asyncio.Task[None] | None = None
        self._hangups: set[asyncio.Task[None]] = set()
        self.tick_errors = 0
        self.leg_errors = 0  # calls whose media raised: each was taken out of the tick and hung up
        self.tick_observer: Callable[[float], None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="sip-media")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        await cancel_and_wait(list(self._hangups))  # (the user agent closes: its calls end anyway)
        if hasattr(select, "epoll") and isinstance(self._poller, select.epoll):
            self._poller.close()

    # ---- which calls have media
    def start_leg(self, leg: SipLeg, negotiated: Negotiated) -> None:
        """Use `negotiated` (answer, early media or re-INVITE) and make sure the call is in the tick."""
        rtp = leg.rtp
        rtp.apply(negotiated)
        rtp.receiving = True
        rtp.set_sending(negotiated.we_send)  # once the dialog is confirmed (see RtpSession)
        if leg not in self.legs and rtp.sock is not None:
            self.legs.append(leg)
            fd = rtp.sock.fileno()
            self._by_fd[fd] = leg
            self._poller.register(fd, select.POLLIN)

    def stop_leg(self, leg: SipLeg) -> None:
        leg.rtp.receiving = False
        leg.rtp.set_sending(False)
        if leg in self.legs and leg.rtp.sock is not None:
            self.legs.remove(leg)
            fd = leg.rtp.sock.fileno()  # the socket stays open a little longer (absorbs late RTP)
            del self._by_fd[fd]
            self._poller.unregister(fd)

    # ---- the tick
    async def run(self) -> None:
        """One media tick per clock tick. When the loop stalls, the clock fires its overdue ticks back to
        back and this loop wakes for only the last of them: it then runs the ticks it missed too, so the
        outbound audio keeps its timeline instead of slipping 20 ms per missed tick. The clock re-anchors
        after long stalls, which bounds a catch-up to a few ticks."""
        clock = self.clock
        last: int | None = None
        while True:
            tick = await clock.tick()
            missed = tick.index - last - 1 if last is not None and tick.index > last else 0
            last = tick.index
            for _ in range(missed + 1):
                try:
                    self.tick(tick.scheduled)
                except Exception:
                    self.tick_errors += 1
                    log.exception("SIP media tick failed")

    def failed(self, leg: SipLeg, exc: BaseException) -> None:
        """`leg`'s media raised: out of the tick at once, counted, logged (rate-limited), hung up."""
        self.leg_errors += 1
        self.stop_leg(leg)
        _limited.log(logging.ERROR, ("leg", type(exc).__name__), "call %s: media failed, hanging up: %r",
                     leg.call_id, exc)
        task = asyncio.get_running_loop().create_task(leg.hangup(EndReason.MEDIA_ERROR),
                                                      name=f"sip-media-error-{leg.call_id}")
        self._hangups.add(task)
        task.add_done_callback(self._hangups.discard)

    def read_rtp(self, rounds: int = 8) -> None:
        """Read the datagrams waiting on every call's RTP socket. The poller is level-triggered: a socket
        with more than one datagram waiting is reported again in the next round. A backlog beyond `rounds`
        waits for the next tick (the jitter buffer trims it anyway), so one call cannot hold up the others."""
        poll = self._poller.poll
        by_fd = self._by_fd
        for _ in range(rounds):
            ready = poll(0)
            if not ready:
                return
            start, n = 0, len(ready)
            while start < n:
                i = start
                try:
                    for i, (fd, _events) in enumerate(ready[start:] if start else ready, start):  # noqa: B007 (except)
                        leg = by_fd.get(fd)
                        if leg is not None:
                            leg.rtp.read_one()
                    break
                except Exception as exc:
                    leg = by_fd.get(ready[i][0])
                    if leg is not None:
                        self.failed(leg, exc)
                    start = i + 1

    def tick(self, scheduled: float) -> None:
        """Send every call's frame of this tick first (that is what is late or not), then hand each
        call's inbound frame from its jitter buffer to the conversation."""
        legs = self.legs
        loop_time = asyncio.get_running_loop().time
        senders = [leg for leg in legs if leg.rtp.sending]  # start_leg set their remote address
        if senders:
            n = len(senders)
            frames = np.zeros((n, FRAME_SAMPLES), dtype=np.int16)
            alaw_rows: list[int] = []
            start = 0
            while start < n:  # the loops over the calls go on past a call that raised (see `failed`)
                i = start
                try:
                    for i, leg in enumerate(senders[start:] if start else senders, start):
                        rtp = leg.rtp
                        if not rtp._dtmf_plan:  # (the attribute, not the property: this runs per call per tick)
                            frame = leg.outbound.pop_frame()
                            if frame is not None:
                                frames[i] = frame
                        elif leg.outbound.tap is not None:
                            leg.outbound.tap(None)  # a DTMF tick: the recorder still sees the tick, as silence
                        if rtp.codec == g711.PCMA:
                            alaw_rows.append(i)
                    break
                except Exception as exc:
                    self.failed(senders[i], exc)
                    start = i + 1
            encoded = g711.ULAW_ENCODE.take(frames.view(np.uint16))
            if alaw_rows:
                encoded[alaw_rows] = g711.ALAW_ENCODE.take(frames[alaw_rows].view(np.uint16))
            payloads = encoded.tobytes()
            start = 0
            while start < n:
                i = start
                try:
                    for i, leg in enumerate(senders[start:] if start else senders, start):
                        rtp = leg.rtp
                        if rtp.sending:  # (a call that failed above is out)
                            rtp.send_payload(payloads[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES])
                    break
                except Exception as exc:
                    self.failed(senders[i], exc)
                    start = i + 1
        observer = self.tick_observer
        if observer is not None:
            observer(max(0.0, loop_time() - scheduled))
        self._receive(legs, loop_time)

    def _receive(self, legs: list[SipLeg], loop_time: Callable[[], float]) -> None:
        due: list[tuple[SipLeg, object]] = []  # an encoded payload, or MISSING for a lost one
        ulaw: list[object] = []  # payloads (bytes) by G.711 law
        alaw: list[object] = []
        self.read_rtp()
        for leg in legs:  # (a jitter buffer holds what its call's packets put there: nothing here raises)
            rtp = leg.rtp
            if rtp.receiving:
                item = rtp.jitter.pop_item()
                if item is not None:
                    due.append((leg, item))
                    if item is not MISSING:
                        (alaw if rtp.codec == g711.PCMA else ulaw).append(item)
        if not due:
            return
        ulaw_bytes = np.frombuffer(b"".join(cast(list[bytes], ulaw)), np.uint8)
        alaw_bytes = np.frombuffer(b"".join(cast(list[bytes], alaw)), np.uint8)
        decoded = {
            g711.PCMU: iter(g711.ULAW_DECODE.take(ulaw_bytes).reshape(-1, FRAME_SAMPLES)),
            g711.PCMA: iter(g711.ALAW_DECODE.take(alaw_bytes).reshape(-1, FRAME_SAMPLES)),
        }
        now = loop_time()
        start, n = 0, len(due)
        while start < n:
            i = start
            try:
                for i, (leg, item) in enumerate(due[start:] if start else due, start):  # noqa: B007 (read in except)
                    jitter = leg.rtp.jitter
                    if item is MISSING:
                        samples = jitter.conceal()
                    else:
                        samples = next(decoded[leg.rtp.codec])
                        jitter.played(samples)
                    leg.deliver_audio(AudioFrame(samples, 8000, now))
                break
            except Exception as exc:  # (the frame was decoded: the next call's is next in `decoded`)
                self.failed(due[i][0], exc)
                start = i + 1
