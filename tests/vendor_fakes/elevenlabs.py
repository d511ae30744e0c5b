"""Test double: ElevenLabs' voices API and streaming text-to-speech, on 127.0.0.1 on a free port.

`GET /v1/voices` lists `voices` (the seed's three by default); `POST /v1/text-to-speech/{voice_id}/stream`
checks `xi-api-key`, reads `output_format=pcm_<rate>` and streams raw int16 PCM at that rate (a tone at
`frequency`, as long as the text takes to say, 60 ms a character) in `chunk_ms` pieces. Faults: `status` (an
HTTP error with the vendor's error body), `stall_s` (wait before the first byte), `json_instead` (a 200 JSON
answer).
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from vendor_fakes.http_server import HttpFake

SEED_VOICES = [
    {"voice_id": "riya0000000000000001", "name": "Riya Rao",
     "labels": {"gender": "female", "language": "en", "accent": "indian"}},
    {"voice_id": "samay000000000000002", "name": "Samay Hinglish Super Premium",
     "labels": {"gender": "male", "language": "hi", "accent": "indian"}},
    {"voice_id": "miranda0000000000003", "name": "Miranda English Voice US",
     "labels": {"gender": "female", "language": "en", "accent": "american"}},
]


def tone(seconds: float, rate: int, frequency: float = 200.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * frequency * t) * 6000).astype("<i2")


class ElevenLabsFake(HttpFake):
    def __init__(self, api_key: str = "xi-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.voices = [dict(v) for v in SEED_VOICES]
        self.status = 200
        self.stall_s = 0.0
        self.json_instead = False
        self.chunk_ms = 50
        self.frequency = 200.0  # of the tone it speaks (tests tell two voices apart by it)
        self.app = Starlette(routes=[
            Route("/v1/voices", self._voices, methods=["GET"]),
            Route("/v1/text-to-speech/{voice_id}/stream", self._stream, methods=["POST"]),
        ])

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("xi-api-key") != self.api_key:
            return JSONResponse({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}, 401)
        return None

    async def _voices(self, request: Request) -> Response:
        await self.record(request)
        return self._denied(request) or JSONResponse({"voices": self.voices})

    async def _stream(self, request: Request) -> Response:
        rec = await self.record(request)
        if (denied := self._denied(request)) is not None:
            return denied
        if self.stall_s:
            await asyncio.sleep(self.stall_s)
        if self.status != 200:
            return JSONResponse({"detail": {"status": "too_many_concurrent_requests",
                                            "message": f"scripted failure {self.status}"}}, self.status)
        if request.path_params["voice_id"] not in {v["voice_id"] for v in self.voices}:
            return JSONResponse({"detail": {"status": "voice_not_found", "message": "voice not found"}}, 404)
        if self.json_instead:
            return JSONResponse({"ok": True})
        rate = int(rec.query.get("output_format", "mp3_44100_128").split("_")[1])
        audio = tone(len(rec.body["text"]) * 0.06, rate, self.frequency).tobytes()
        step = rate * 2 * self.chunk_ms // 1000 + 1  # odd: chunks split samples, as real streams may

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(audio), step):
                yield audio[start:start + step]
                await asyncio.sleep(0)

        return StreamingResponse(chunks(), media_type="audio/pcm")
