"""Test double: Deepgram's live transcription WebSocket (`/v1/listen`), on 127.0.0.1 on a free port.

It checks `Authorization: Token <key>` (HTTP 401 on the handshake otherwise), records each stream's query
parameters, the audio bytes it got and every text message (KeepAlive, Finalize, CloseStream) in order, and
answers the way the vendor documents: an interim `Results` once some audio arrived, a final `Results`
(`is_final`, `speech_final`, `from_finalize`) for `Finalize`, and for `CloseStream` the final for any audio
not yet finalised, a `Metadata`, then a normal close. Faults: `drop_after_bytes` (the connection is cut,
no close frame, once that much audio came), `stall` (never answers), `reject_status` (handshake refused).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response


@dataclass
class DeepgramSession:
    query: dict[str, str]
    headers: Headers
    audio: bytearray = field(default_factory=bytearray)
    messages: list[str] = field(default_factory=list)  # the "type" of each text frame, in order
    closed_by_client: bool = False


class DeepgramFake:
    def __init__(self, api_key: str = "dg-test-key", transcripts: list[str] | None = None,
                 language: str | None = None) -> None:
        self.api_key = api_key
        self.transcripts = list(transcripts or ["check the status of my order"])
        self.language = language  # reported in alternatives[0].languages when set
        self.sessions: list[DeepgramSession] = []
        self.drop_after_bytes: int | None = None  # cut the next stream after this much audio
        self.stall = False
        self.reject_status: int | None = None
        self.garbage = False  # answer audio with a text frame that is not JSON
        self.finals_sent = 0
        self._server: Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _next_transcript(self) -> str:
        text = self.transcripts[min(self.finals_sent, len(self.transcripts) - 1)]
        self.finals_sent += 1
        return text

    def _results(self, text: str, *, is_final: bool, from_finalize: bool = False,
                 speech_final: bool = False) -> str:
        alternative: dict[str, Any] = {"transcript": text, "confidence": 0.98, "words": [
            {"word": w, "start": 0.1 * i, "end": 0.1 * i + 0.08, "confidence": 0.98, "punctuated_word": w}
            for i, w in enumerate(text.split())]}
        if self.language:
            alternative["languages"] = [self.language]
        message: dict[str, Any] = {"type": "Results", "channel_index": [0, 1], "duration": 1.0, "start": 0.0,
                                   "is_final": is_final, "speech_final": speech_final,
                                   "channel": {"alternatives": [alternative]},
                                   "metadata": {"request_id": "fake", "model_uuid": "fake",
                                                "model_info": {"name": "nova", "version": "fake", "arch": "nova"}}}
        if from_finalize:
            message["from_finalize"] = True
        return json.dumps(message)

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.reject_status is not None:
            return connection.respond(HTTPStatus(self.reject_status), "rejected by the fake\n")
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            return connection.respond(HTTPStatus.UNAUTHORIZED, "Invalid credentials.\n")
        if urlsplit(request.path).path != "/v1/listen":
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        session = DeepgramSession(dict(parse_qsl(urlsplit(ws.request.path).query)), ws.request.headers)
        self.sessions.append(session)
        drop_after, self.drop_after_bytes = self.drop_after_bytes, None
        pending = 0  # audio bytes since the last final
        interim_sent = False
        async for message in ws:
            if isinstance(message, bytes):
                session.audio.extend(message)
                pending += len(message)
                if drop_after is not None and len(session.audio) >= drop_after:
                    assert ws.transport is not None
                    ws.transport.abort()
                    return
                if self.garbage:
                    await ws.send("<html>gateway error</html>")
                    continue
                if not interim_sent and not self.stall:
                    words = self.transcripts[min(self.finals_sent, len(self.transcripts) - 1)].split()
                    await ws.send(self._results(" ".join(words[:1]), is_final=False))
                    interim_sent = True
                continue
            kind = json.loads(message).get("type", "?")
            session.messages.append(kind)
            if self.stall:
                continue
            if kind == "Finalize":
                text = self._next_transcript() if pending else ""
                await ws.send(self._results(text, is_final=True, from_finalize=True, speech_final=bool(text)))
                if text:
                    await ws.send(json.dumps({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 1.0}))
                pending, interim_sent = 0, False
            elif kind == "CloseStream":
                session.closed_by_client = True
                if pending:
                    await ws.send(self._results(self._next_transcript(), is_final=True, speech_final=True))
                await ws.send(json.dumps({"type": "Metadata", "transaction_key": "deprecated",
                                          "request_id": "fake", "sha256": "0" * 64, "created": "2026-12-04",
                                          "duration": len(session.audio) / 2 / int(session.query.get(
                                              "sample_rate", 16000)), "channels": 1}))
                await ws.close()
                return

    async def start(self) -> DeepgramFake:
        # the same port again after a stop(): connections refused meanwhile, the base URL unchanged
        self._server = await serve(self._handle, "127.0.0.1", self.port, process_request=self._check,
                                   compression=None)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> DeepgramFake:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
