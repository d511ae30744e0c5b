"""Every vendor fake at once, and the server settings that point `talkwire serve` at them.

    async with VendorStack() as vendors:
        settings = base.model_copy(update=vendors.settings())
        ...
        vendors.reset()  # between calls: recordings cleared, faults off, scripts emptied

The fakes are served by the loop that enters the stack; a live server (its own thread and loop) reaches them
over real sockets, the way it reaches the vendors.
"""
from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from openai_fake import OpenAIFake

from vendor_fakes.azure import AzureOpenAIFake
from vendor_fakes.deepgram import DeepgramFake
from vendor_fakes.elevenlabs import ElevenLabsFake
from vendor_fakes.sarvam import SarvamFake

GROQ_MODEL = "llama-3.3-70b-versatile"


class VendorStack:
    def __init__(self) -> None:
        self.deepgram = DeepgramFake()
        self.elevenlabs = ElevenLabsFake()
        self.sarvam = SarvamFake()
        self.azure = AzureOpenAIFake()
        self.groq = OpenAIFake(models=[GROQ_MODEL], api_key="gsk-test", require_key=True,
                               default_text="Hello from Groq.")
        self._exits = AsyncExitStack()

    def settings(self) -> dict[str, Any]:
        """Settings fields (`Settings.model_copy(update=...)`) with each vendor's key and base URL at its fake."""
        return {
            "deepgram_api_key": self.deepgram.api_key, "deepgram_base_url": self.deepgram.base_url,
            "elevenlabs_api_key": self.elevenlabs.api_key, "elevenlabs_base_url": self.elevenlabs.base_url,
            "sarvam_api_key": self.sarvam.api_key, "sarvam_base_url": self.sarvam.base_url,
            "azure_api_key": self.azure.api_key, "azure_base_url": self.azure.endpoint,
            "groq_api_key": self.groq.api_key, "groq_base_url": self.groq.base_url,
        }

    def reset(self) -> None:
        """Recordings cleared and every fault off, for the next call on the same server."""
        deepgram = self.deepgram
        deepgram.sessions.clear()
        deepgram.drop_after_bytes = deepgram.reject_status = None
        deepgram.stall = deepgram.garbage = False
        deepgram.language = None
        deepgram.finals_sent = 0
        for http in (self.elevenlabs, self.sarvam, self.azure):
            http.requests.clear()
        self.elevenlabs.status, self.elevenlabs.stall_s, self.elevenlabs.json_instead = 200, 0.0, False
        self.sarvam.status, self.sarvam.stall_s = 200, 0.0
        self.elevenlabs.frequency = self.sarvam.frequency = 200.0
        self.azure.script.clear()
        self.azure.not_a_stream, self.azure.keepalive_only_s, self.azure.usage = False, 0.0, None
        self.groq.requests.clear()
        self.groq.script.clear()

    async def __aenter__(self) -> VendorStack:
        for fake in (self.deepgram, self.elevenlabs, self.sarvam, self.azure, self.groq):
            await self._exits.enter_async_context(fake)  # type: ignore[arg-type]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._exits.aclose()
