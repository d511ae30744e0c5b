"""SIP load, both directions, through a SIP user agent the load tester runs itself (the "load generator").

Outbound (`--leg sip`): the server dials out (`POST /calls/create` with `type: "sip"`) to the generator,
whose trunk address is the server's TALKWIRE_SIP_TRUNK; the generator answers every call and plays the
script into it. Inbound (`--leg sip-in`): a number linked to the agent is imported through the API, and the
generator calls it at the server's SIP address, like a phone calling in.

    generator = await SipLoadGenerator.start(("127.0.0.1", 0))
    # the server's TALKWIRE_SIP_TRUNK = generator.trunk_uri (the local server is started with it)
    caller = SipCaller(i, speech, script, generator=generator)
    result = await caller.run(http, base_url, agent_id, secret_key, duration)

Each call dials a number of its own (+1555XXXXXXX); the generator's resolver accepts it and hands the leg to
the caller waiting for that number. What the caller hears is the leg's inbound audio after our jitter buffer
(one frame per tick); it speaks by pushing 8 kHz audio to the leg's outbound queue, whose tap tells when the
first and last frame of a clip went out. Phone calls have no data channel, so the words the server heard
come from the call record (`GET /calls/{id}`) once the call is over.
"""
from __future__ import annotations

import asyncio
import contextlib

import httpx
import numpy as np

from loadtest.audio import RATE, SpeechCache, Turn
from loadtest.caller import CallFailed, ScriptedCall
from loadtest.webrtc_peer import response_body, rms
from media.end_reason import EndReason
from media.pacing import MediaClock
from media.resample import resample
from signalling.sip import Decision, InboundInvite, SipLeg, SipUserAgent

RTP_PORTS = (40000, 49999)  # away from the server's default 20000-30000, should both run on one host


def number_for(index: int) -> str:
    return f"+1555{index:07d}"


class SipLoadGenerator:
    """The load tester's own SIP trunk: answers every INVITE and routes the leg to whoever awaits its number."""

    def __init__(self) -> None:
        self.ua: SipUserAgent | None = None
        self.clock = MediaClock()
        self._waiting: dict[str, asyncio.Future[SipLeg]] = {}

    @classmethod
    async def start(cls, bind: tuple[str, int] = ("127.0.0.1", 0)) -> SipLoadGenerator:
        generator = cls()
        generator.ua = await SipUserAgent.start(bind=bind, rtp_ports=RTP_PORTS, clock=generator.clock,
                                                resolver=generator._resolve, on_incoming=generator._incoming)
        return generator

    @property
    def agent(self) -> SipUserAgent:
        assert self.ua is not None, "SipLoadGenerator.start() makes the user agent"
        return self.ua

    @property
    def trunk_uri(self) -> str:
        host, port = self.agent.local_address
        return f"sip:loadtest@{host}:{port};transport=udp"

    def expect(self, number: str) -> asyncio.Future[SipLeg]:
        future = asyncio.get_running_loop().create_future()
        self._waiting[number.lstrip("+")] = future
        return future

    async def _resolve(self, invite: InboundInvite) -> Decision:
        key = invite.to_user.lstrip("+")
        return Decision.accept(key) if key in self._waiting else Decision.reject(404)

    def _incoming(self, leg: SipLeg) -> None:
        future = self._waiting.pop(str(leg.context), None)
        if future is not None and not future.done():
            future.set_result(leg)

    async def close(self) -> None:
        if self.ua is not None:
            await self.ua.close()
        await self.clock.stop()


INBOUND_NUMBER = "+15559990000"  # the number the inbound callers dial (imported, linked to the agent)


async def link_inbound_number(http: httpx.AsyncClient, base_url: str, secret_key: str, agent_id: str,
                              generator: SipLoadGenerator) -> str:
    """Import INBOUND_NUMBER for the agent (its trunk: the generator, where calls come from)."""
    host, port = generator.agent.local_address
    response = await http.post(f"{base_url}/phone-numbers/import", headers={"X-API-Key": secret_key}, json={
        "phone_number": INBOUND_NUMBER, "agent_id": agent_id, "credential_label": "loadtest",
        "trunk": {"host": host, "port": port, "transport": "udp", "username": "loadtest", "password": "loadtest"}})
    if response.status_code not in (200, 201):
        raise RuntimeError(f"cannot link {INBOUND_NUMBER} to the agent: HTTP {response.status_code} "
                           f"{response.text[:300]}")
    return INBOUND_NUMBER


class SipCaller(ScriptedCall):
    """A phone call the server places to the load generator's trunk (Phase 1 needs a secret key)."""

    def __init__(self, index: int, speech: SpeechCache, script: tuple[Turn, ...], *, generator: SipLoadGenerator,
                 inbound_to: str | None = None, max_turns: int | None = None, on_progress=None) -> None:
        """`inbound_to` = "number@host:port": call in to that number at the server's SIP address instead."""
        super().__init__(index, speech, script, max_turns=max_turns, on_progress=on_progress)
        self.generator = generator
        self.inbound_to = inbound_to
        self.transcripts_known = inbound_to is None  # an inbound call's record id is not known here
        self.leg: SipLeg | None = None
        self._started: asyncio.Future[float] | None = None
        self._done: asyncio.Future[float] | None = None

    async def _connect(self, http: httpx.AsyncClient, base_url: str, agent_id: str, key: str) -> None:
        if self.inbound_to is not None:
            number, address = self.inbound_to.split("@", 1)
            leg = await self.generator.agent.dial(number, f"sip:loadtest@{address}",
                                               from_number=number_for(self.result.index))
            answered = await leg.answered
            if not answered.answered:
                raise CallFailed(f"inbound call not answered: {answered.outcome} (SIP {answered.sip_status})")
            await self._attach(leg)
            return
        number = number_for(self.result.index)
        arriving = self.generator.expect(number)
        response = await http.post(f"{base_url.rstrip('/')}/calls/create", headers={"X-API-Key": key},
                                   json={"agent_id": agent_id, "type": "sip", "sip_data": {"to": number}})
        body = response_body(response)
        if response.status_code != 200:
            arriving.cancel()
            raise CallFailed(f"Phase 1 (POST /calls/create, sip): HTTP {response.status_code} {body}")
        self.result.call_id = body.get("call_id")
        await self._attach(await arriving)

    async def _attach(self, leg: SipLeg) -> None:
        self.leg = leg
        leg.outbound.tap = self._sent
        leg.ended.add_done_callback(lambda _f: self.closed.set())
        task = asyncio.get_running_loop().create_task(self._hear(leg), name="loadtest-sip-hear")
        self._tasks.add(task)
        await self._first_packet.wait()

    async def _hear(self, leg: SipLeg) -> None:
        loop = asyncio.get_running_loop()
        while (frame := await leg.inbound.get()) is not None:
            self._heard(rms(frame.samples), loop.time())

    def play(self, samples: np.ndarray) -> tuple[asyncio.Future[float], asyncio.Future[float]]:
        loop = asyncio.get_running_loop()
        for future in (self._started, self._done):
            if future is not None and not future.done():
                future.cancel()
        self._started, self._done = loop.create_future(), loop.create_future()
        assert self.leg is not None, "the call is up"
        self.leg.outbound.clear()
        self.leg.outbound.push(resample(samples, RATE, self.leg.sample_rate))
        return self._started, self._done

    def _sent(self, samples: np.ndarray | None) -> None:
        """The leg's outbound tap: every tick's frame (None when nothing is queued)."""
        if samples is None:
            return
        now = asyncio.get_running_loop().time()
        if self._started is not None and not self._started.done():
            self._started.set_result(now)
        emptied = self.leg is not None and not self.leg.outbound.queued_samples
        if emptied and self._done is not None and not self._done.done():
            self._done.set_result(now + 0.02)

    async def _finish_media(self, http: httpx.AsyncClient, base_url: str, key: str) -> None:
        leg = self.leg
        if leg is not None:
            self.result.packets_received = leg.rtp.packets_received
            if not leg.ended.done():
                await leg.hangup(EndReason.CALLER_HANGUP)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.result.call_id:
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                await self._read_transcripts(http, base_url, key)

    async def _read_transcripts(self, http: httpx.AsyncClient, base_url: str, key: str) -> None:
        """What the server heard, from the call record once it is final (phone calls have no data channel)."""
        for _ in range(50):
            response = await http.get(f"{base_url.rstrip('/')}/calls/{self.result.call_id}",
                                      headers={"X-API-Key": key})
            call = response.json()
            if call.get("status") in ("completed", "failed"):
                break
            await asyncio.sleep(0.2)
        self.result.transcripts = [str(turn.get("text", "")) for turn in call.get("transcript") or []
                                   if turn.get("role") == "user"]
