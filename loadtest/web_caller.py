"""A scripted web call: the shared aiortc caller (`WebRtcPeer`) following the load tester's script.

Phase 1 `POST /calls/create` (type web, with the key), Phase 2 the SDP offer to `worker_url`, a data channel
(label "talkwire") whose `client_tool_call`s are acknowledged at once (and answered `{"ok": true}` when
blocking), and a microphone track that plays the script's turns in real time.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import numpy as np

from loadtest.audio import SpeechCache, Turn
from loadtest.caller import CallFailed, ScriptedCall
from loadtest.webrtc_peer import CallerError, Message, WebRtcPeer


class WebCaller(ScriptedCall):
    """A web call: aiortc, Phase 1 with the (publishable) key, Phase 2 to `worker_url`, a data channel."""

    def __init__(self, index: int, speech: SpeechCache, script: tuple[Turn, ...], *,
                 host_addresses: tuple[str, ...] = (), ice_servers: Iterable[dict[str, Any]] = (),
                 echo: bool = False, max_turns: int | None = None,
                 on_progress: Callable[[str], None] | None = None) -> None:
        super().__init__(index, speech, script, echo=echo, max_turns=max_turns, on_progress=on_progress)
        self.peer = WebRtcPeer(host_addresses=host_addresses, ice_servers=ice_servers,
                               on_message=self._on_message, on_audio=self._on_audio)
        self.closed = self.peer.closed  # the connection failed or closed

    def play(self, samples: np.ndarray) -> tuple[asyncio.Future[float], asyncio.Future[float]]:
        return self.peer.mic.play(samples)

    async def _connect(self, http: httpx.AsyncClient, base_url: str, agent_id: str, key: str) -> None:
        try:
            created = await self.peer.create_call(http, base_url, agent_id, key)
        except CallerError as exc:
            raise CallFailed(f"Phase 1 (POST /calls/create): HTTP {exc.status} {exc.body}") from None
        self.result.call_id = created.get("call_id")
        try:
            await self.peer.post_offer(http, created["worker_url"])
        except CallerError as exc:
            raise CallFailed(f"Phase 2 (offer to worker_url): HTTP {exc.status} {exc.body}") from None
        await self.peer.opened.wait()
        await self._first_packet.wait()

    def _on_audio(self, _samples: np.ndarray, level: float, arrival: float) -> None:
        self._heard(level, arrival)

    def _on_message(self, _text: str, message: Message | None) -> None:
        if message is None:
            return
        kind = message.get("type")
        if kind == "agent_state":
            self.agent_state = message.get("state")
        elif kind == "transcription" and message.get("role") == "user" and message.get("is_final"):
            self.result.transcripts.append(str(message.get("text", "")))
        elif kind == "client_tool_call" and self.peer.channel.readyState == "open":
            call_id = message.get("tool_call_id")
            self.peer.send_raw(json.dumps({"type": "client_tool_ack", "tool_call_id": call_id}))
            if message.get("execution_mode") == "blocking":
                self.peer.send_raw(json.dumps({"type": "client_tool_result", "tool_call_id": call_id,
                                           "result": {"ok": True}}))
            self.result.tool_calls_acked += 1

    async def _finish_media(self, http: httpx.AsyncClient, base_url: str, key: str) -> None:
        rtp = await self.peer.inbound_rtp()
        if rtp is not None:
            self.result.packets_received, self.result.packets_lost = rtp
        with contextlib.suppress(Exception):
            await self.peer.close()
