"""Test double: an OpenAI-compatible audio API (`/v1/audio/transcriptions`, `/v1/audio/speech`), as OpenAI
and the self-hosted speech servers that copy it serve, on 127.0.0.1 on a free port. Checks the Bearer key,
records the forms and bodies; speech answers raw 24 kHz int16 PCM, streamed."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from vendor_fakes.elevenlabs import tone
from vendor_fakes.http_server import HttpFake


class OpenAIAudioFake(HttpFake):
    def __init__(self, api_key: str = "sk-audio-test") -> None:
        super().__init__()
        self.api_key = api_key
        self.text = "check the status of my order"
        self.status = 200
        self.app = Starlette(routes=[
            Route("/v1/audio/transcriptions", self._transcribe, methods=["POST"]),
            Route("/v1/audio/speech", self._speech, methods=["POST"]),
        ])

    @property
    def api_url(self) -> str:
        return self.base_url + "/v1"

    def _denied(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"error": {"message": "Incorrect API key provided."}}, 401)
        if self.status != 200:
            return JSONResponse({"error": {"message": f"scripted failure {self.status}"}}, self.status)
        return None

    async def _transcribe(self, request: Request) -> Response:
        await self.record(request)
        return self._denied(request) or JSONResponse({"text": self.text})

    async def _speech(self, request: Request) -> Response:
        rec = await self.record(request)
        if (denied := self._denied(request)) is not None:
            return denied
        audio = tone(len(rec.body["input"]) * 0.06, 24000).tobytes()

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(audio), 4801):
                yield audio[start:start + 4801]
                await asyncio.sleep(0)

        return StreamingResponse(chunks(), media_type="audio/pcm")
