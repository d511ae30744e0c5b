"""WebRtcLeg over real loopback WebRTC: an aiortc caller (tests/webrtc_caller.py) ↔ a leg, no server."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from media.frames import AudioFrame
from media.outbound import OutboundAudio
from media.pacing import MediaClock, Tick
from signalling.webrtc import AgentAudioTrack, InvalidOffer, WebRtcLeg
from webrtc_caller import SILENCE_RMS, CallerError, WebRtcCaller, dominant_frequency, tone

LOOPBACK = ["127.0.0.1"]


@pytest.fixture
async def clock():
    clock = MediaClock()
    yield clock
    await clock.stop()


async def connect(caller: WebRtcCaller, clock: MediaClock, before_answer=None) -> WebRtcLeg:
    leg, answer = await WebRtcLeg.accept(await caller.create_offer(), clock=clock, host_addresses=LOOPBACK)
    if before_answer is not None:
        await before_answer(leg)
    assert not leg.connected.is_set()
    await caller.apply_answer(answer)
    await caller.wait_connected()
    await asyncio.wait_for(leg.connected.wait(), 10)
    return leg


async def inbound_frames(leg: WebRtcLeg, count: int) -> list[AudioFrame]:
    frames = []
    while len(frames) < count:
        frame = await asyncio.wait_for(leg.inbound.get(), 10)
        assert frame is not None, "leg ended while receiving"
        frames.append(frame)
    return frames


def leaked_tasks() -> list[asyncio.Task]:
    return [
        t for t in asyncio.all_tasks()
        if t is not asyncio.current_task() and t.get_name() != "media-clock"
    ]


async def test_caller_audio_arrives_as_48k_mono_20ms_frames(clock):
    caller = WebRtcCaller(tone(1000, 1.5))
    leg = await connect(caller, clock)
    try:
        frames = await inbound_frames(leg, 70)
        assert {len(f.samples) for f in frames} == {960}
        assert {f.sample_rate for f in frames} == {48000}
        assert all(f.samples.dtype == np.int16 and f.samples.ndim == 1 for f in frames)
        stamps = np.array([f.timestamp for f in frames])
        assert np.all(np.diff(stamps) > 0)
        voiced = [f.samples for f in frames if np.sqrt(np.mean(f.samples.astype(float) ** 2)) > 1000]
        assert len(voiced) >= 40
        assert abs(dominant_frequency(np.concatenate(voiced)) - 1000) < 15
    finally:
        await caller.close()
        await leg.hangup("test_over")


async def test_agent_audio_reaches_the_caller_paced(clock):
    caller = WebRtcCaller()
    leg = await connect(caller, clock)
    try:
        # Silence flows while the agent says nothing.
        silent = await caller._wait(lambda: caller.heard[:10] if len(caller.heard) >= 10 else None, 10, lambda: "")
        assert all(f.rms < SILENCE_RMS for f in silent)

        leg.outbound.push(tone(660, 1.0))
        heard = await caller.wait_for_audio(seconds=0.8)
        assert abs(dominant_frequency(caller.heard_audio(nonsilent_only=True)) - 660) < 15
        # The one second of tone is paced out over roughly one second, not burst at once.
        await caller._wait(lambda: True if leg.outbound.queued_samples == 0 else None, 10, lambda: "queue drained")
        await asyncio.sleep(0.2)
        tone_frames = caller.nonsilent()
        span = tone_frames[-1].time - tone_frames[0].time
        assert 45 <= len(tone_frames) <= 55
        assert 0.5 < span < 2.5, span
        assert leg.outbound.played_total == leg.outbound.pushed_total == 48000
        assert heard
    finally:
        await caller.close()
        await leg.hangup("test_over")


async def test_data_channel_json_both_ways_and_garbage_is_answered(clock):
    caller = WebRtcCaller(tone(440, 3.0))

    async def early(leg: WebRtcLeg) -> None:
        # Sent before the browser's data channel exists: buffered and flushed on open.
        await leg.send_event({"type": "agent_state", "state": "listening"})

    leg = await connect(caller, clock, before_answer=early)
    try:
        assert (await caller.wait_for_message("agent_state"))["state"] == "listening"

        caller.send({"type": "client_context_update", "current_page": "/pricing"})
        assert await asyncio.wait_for(leg.events.get(), 10) == {
            "type": "client_context_update", "current_page": "/pricing"
        }

        for garbage in ("not json", "[1, 2]", '"a string"', "{broken"):
            caller.send_raw(garbage)
        await caller._wait(
            lambda: True if sum(m.get("type") == "error" for m in caller.messages) >= 4 else None,
            10, lambda: f"messages: {caller.messages}",
        )
        errors = [m for m in caller.messages if m["type"] == "error"]
        assert {e["code"] for e in errors} == {"INVALID_MESSAGE"}
        assert all(e["message"] for e in errors)
        assert leg.invalid_messages == 4

        # Hostile messages (deep nesting that crashed json.loads with RecursionError, a non-finite number, an
        # oversized message, invalid UTF-8) are answered each with its code, and the call carries on.
        hostile = {"MESSAGE_TOO_DEEP": "[" * 2000 + "]" * 2000, "INVALID_NUMBER": '{"type": "x", "n": 1e400}',
                   "MESSAGE_TOO_LARGE": '{"type": "x", "pad": "' + "a" * (leg.max_message_bytes + 1) + '"}'}
        for text in hostile.values():
            caller.send_raw(text)
        await caller._wait(
            lambda: True if sum(m.get("type") == "error" for m in caller.messages) >= 7 else None,
            10, lambda: f"messages: {caller.messages}",
        )
        codes = [m["code"] for m in caller.messages if m["type"] == "error"][4:]
        assert codes == list(hostile)
        assert leg.invalid_messages == 7 and not leg.ended.done()

        # The call carries on: events and audio still flow both ways.
        caller.send({"type": "ping", "n": 1})
        assert await asyncio.wait_for(leg.events.get(), 10) == {"type": "ping", "n": 1}
        await leg.send_event({"type": "transcription", "role": "agent", "text": "still here", "is_final": True})
        assert (await caller.wait_for_message("transcription"))["text"] == "still here"
        await inbound_frames(leg, 5)
        assert not leg.ended.done()
    finally:
        await caller.close()
        await leg.hangup("test_over")


async def test_a_message_flood_is_cut_to_the_rate_and_the_call_goes_on(clock):
    caller = WebRtcCaller(tone(440, 3.0))
    leg = await connect(caller, clock)
    try:
        sent = 2000
        for n in range(sent):
            caller.send({"type": "client_context_update", "n": n})
        caller.send({"type": "ping", "n": "last"})  # may be dropped too: the flood is still being refilled
        delivered: list[dict] = []
        judged = -1
        while judged < len(delivered) + leg.rate_limited_messages:  # until the flood has stopped arriving
            judged = len(delivered) + leg.rate_limited_messages
            await asyncio.sleep(1.0)
            while not leg.events.empty():
                delivered.append(leg.events.get_nowait())
        notices = [m for m in caller.messages if m.get("code") == "RATE_LIMITED"]
        print(f"flood of {sent}: {len(delivered)} delivered, {leg.rate_limited_messages} dropped, "
              f"{len(notices)} RATE_LIMITED notices")
        assert len(delivered) >= 60  # the burst, then the refill rate while the flood arrived
        assert leg.rate_limited_messages > len(delivered)  # most of the flood was dropped
        assert len(delivered) <= 60 + 20 * (len(notices) + 1)  # never more than the rate allows
        assert 1 <= len(notices) <= 30  # at most one a second, not one per dropped message
        await asyncio.sleep(1.0)  # the bucket refills: the caller is heard again
        caller.send({"type": "ping", "n": 2})
        assert await asyncio.wait_for(leg.events.get(), 10) == {"type": "ping", "n": 2}
        await inbound_frames(leg, 5)
        assert not leg.ended.done()
    finally:
        await caller.close()
        await leg.hangup("test_over")


@pytest.mark.parametrize(
    "sdp",
    [
        "",
        "hello",
        "v=0\r\nthis is not sdp\r\n",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n",
    ],
)
async def test_malformed_offer_raises_invalid_offer(clock, sdp):
    with pytest.raises(InvalidOffer):
        await WebRtcLeg.accept(sdp, clock=clock, host_addresses=LOOPBACK)
    assert leaked_tasks() == []


async def test_offer_without_audio_is_rejected(clock):
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    pc.createDataChannel("talkwire")
    offer = await pc.createOffer()
    await pc.close()
    with pytest.raises(InvalidOffer, match="audio"):
        await WebRtcLeg.accept(offer.sdp, clock=clock, host_addresses=LOOPBACK)


async def test_caller_hangup_finishes_the_leg(clock):
    caller = WebRtcCaller(tone(440, 3.0))
    leg = await connect(caller, clock)
    await inbound_frames(leg, 3)
    await caller.close()
    assert await asyncio.wait_for(leg.ended, 30) == "remote_hangup"
    # The conversation's reader is woken with the end-of-stream marker.
    while await asyncio.wait_for(leg.inbound.get(), 5) is not None:
        pass
    await leg.hangup("cleanup")  # idempotent: the reason stays the first one
    assert leg.ended.result() == "remote_hangup"
    await asyncio.sleep(0.1)
    assert leaked_tasks() == []


async def test_agent_hangup_closes_the_call(clock):
    caller = WebRtcCaller(tone(440, 3.0))
    leg = await connect(caller, clock)
    await inbound_frames(leg, 3)
    await leg.hangup("agent_hangup")
    assert leg.ended.result() == "agent_hangup"
    assert leg.pc.connectionState == "closed"
    await leg.send_event({"type": "late"})  # after the call: dropped, no error
    await asyncio.wait_for(caller.closed.wait(), 30)
    await caller.close()
    await asyncio.sleep(0.1)
    assert leaked_tasks() == []


class SteppedClock:
    """Test double for MediaClock: it ticks only when the test calls advance()."""

    def __init__(self) -> None:
        self.last: Tick | None = None
        self._waiters: list[asyncio.Future] = []

    async def tick(self) -> Tick:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return await waiter

    def advance(self) -> None:
        self.last = Tick((self.last.index if self.last else 0) + 1, 0.0, 0.0)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.set_result(self.last)


async def test_agent_track_serves_one_frame_per_tick_and_catches_up_missed_ticks():
    clock = SteppedClock()
    outbound = OutboundAudio(48000)
    track = AgentAudioTrack(SimpleNamespace(outbound=outbound), clock)
    speech = np.arange(960 * 3, dtype=np.int16)
    outbound.push(speech)

    first = asyncio.create_task(track.recv())
    await asyncio.sleep(0.01)
    assert not first.done()  # waits for the shared clock
    clock.advance()
    frames = [await first]

    # The sender came back late: two ticks passed meanwhile. Both are served without waiting.
    clock.advance()
    clock.advance()
    frames.append(await asyncio.wait_for(track.recv(), 1))
    frames.append(await asyncio.wait_for(track.recv(), 1))

    # Caught up: the next frame waits for the next tick again, and is silence (queue empty).
    fourth = asyncio.create_task(track.recv())
    await asyncio.sleep(0.01)
    assert not fourth.done()
    clock.advance()
    frames.append(await fourth)

    assert [f.pts for f in frames] == [0, 960, 1920, 2880]
    assert {(f.sample_rate, f.samples, f.format.name, len(f.layout.channels)) for f in frames} == {
        (48000, 960, "s16", 1)
    }
    sent = np.concatenate([f.to_ndarray()[0] for f in frames])
    assert np.array_equal(sent[:len(speech)], speech)
    assert not sent[len(speech):].any()
    track.stop()


async def test_caller_phase_one_against_the_real_api(client, settings):
    agent_id = (await client.get("/demo/config")).json()["agents"][0]["id"]
    caller = WebRtcCaller()
    try:
        created = await caller.create_call(client, "http://testserver", agent_id, settings.publishable_key)
        assert created["status"] == "in-progress"
        assert caller.call_id == created["call_id"]
        assert caller.worker_url.endswith(f"/webrtc?agent={agent_id}_{created['call_id']}")

        with pytest.raises(CallerError) as failure:
            await caller.create_call(client, "http://testserver", agent_id, "pk_live_not_a_key")
        assert failure.value.status == 401
        assert failure.value.body["error"]["code"] == "INVALID_API_KEY"
    finally:
        await caller.close()


def test_immediate_audio_buffer_hands_on_each_packet_at_once_and_drops_late_ones():
    from aiortc.rtp import RtpPacket

    from signalling.webrtc import ImmediateAudioBuffer

    def packet(seq: int) -> RtpPacket:
        p = RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * 960)
        p._data = bytes([seq % 256])
        return p

    buffer = ImmediateAudioBuffer()
    handed = [buffer.add(packet(seq))[1] for seq in (65534, 65535, 0, 65535, 0, 2, 1)]
    assert [f.data[0] if f else None for f in handed] == [254, 255, 0, None, None, 2, None]


async def test_the_leg_decodes_caller_audio_without_aiortcs_playout_delay():
    """aiortc keeps its receiver's jitter buffer in a private attribute; the leg swaps it (see
    use_immediate_audio_buffer), and this fails loudly if an aiortc upgrade moves it."""
    from signalling.webrtc import ImmediateAudioBuffer

    clock = MediaClock()
    caller = WebRtcCaller()
    offer = await caller.create_offer()
    leg, _answer = await WebRtcLeg.accept(offer, clock=clock, host_addresses=["127.0.0.1"])
    try:
        receiver = next(t.receiver for t in leg.pc.getTransceivers() if t.kind == "audio")
        assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, ImmediateAudioBuffer)
    finally:
        await leg.hangup("test_over")
        await caller.close()
        await clock.stop()
