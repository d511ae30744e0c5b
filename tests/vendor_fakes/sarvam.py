"""Test double: Sarvam AI's REST speech-to-text and text-to-speech, on 127.0.0.1 on a free port.

`POST /speech-to-text` and `/speech-to-text-translate` take the multipart form (`file` a WAV, `model`,
`language_code`, `mode`) and answer `{"request_id", "transcript", "language_code"}`; `POST /text-to-speech`
takes the JSON body and answers `{"request_id", "audios": [<base64 WAV at speech_sample_rate>]}`. Every
route checks `api-subscription-key`. Faults: `status` (an HTTP error), `stall_s`.
"""
from __future__ import annotations

import asyncio
import base64
import io
import wave

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vendor_fakes.elevenlabs import tone
from vendor_fakes.http_server import HttpFake


def wav(samples: bytes, rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples)
    return out.getvalue()


class SarvamFake(HttpFake):
    def __init__(self, api_key: str = "sarvam-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.transcript = "मेरा ऑर्डर कहाँ है"
        self.language_code = "hi-IN"
        self.translation = "where is my order"
        self.status = 200
        self.stall_s = 0.0
        self.frequency = 200.0  # of the tone its speech is
        self.app = Starlette(routes=[
            Route("/speech-to-text", self._stt, methods=["POST"]),
            Route("/speech-to-text-translate", self._stt, methods=["POST"]),
            Route("/text-to-speech", self._tts, methods=["POST"]),
        ])

    async def _guard(self, request: Request) -> Response | None:
        if request.headers.get("api-subscription-key") != self.api_key:
            return JSONResponse({"error": {"message": "Invalid API subscription key", "code": "invalid_api_key_error"}},
                                403)
        if self.stall_s:
            await asyncio.sleep(self.stall_s)
        if self.status != 200:
            return JSONResponse({"error": {"message": f"scripted failure {self.status}", "code": "rate_limit"}},
                                self.status)
        return None

    async def _stt(self, request: Request) -> Response:
        rec = await self.record(request)
        if (denied := await self._guard(request)) is not None:
            return denied
        if "file" not in rec.files:
            return JSONResponse({"error": {"message": "file is required"}}, 400)
        with wave.open(io.BytesIO(rec.files["file"]), "rb"):
            pass  # a WAV, or this raises and the test sees a 500
        translating = request.url.path.endswith("-translate")
        return JSONResponse({"request_id": "fake", "transcript": self.translation if translating else self.transcript,
                             "language_code": self.language_code})

    async def _tts(self, request: Request) -> Response:
        rec = await self.record(request)
        if (denied := await self._guard(request)) is not None:
            return denied
        rate = int(rec.body.get("speech_sample_rate", 22050))
        audio = wav(tone(len(rec.body["text"]) * 0.06, rate, self.frequency).tobytes(), rate)
        return JSONResponse({"request_id": "fake", "audios": [base64.b64encode(audio).decode()]})
