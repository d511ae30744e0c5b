"""The seed's own agent bodies with the cloud vendors configured (base URLs at local fakes of each vendor),
and the discovery endpoints listing those vendors only when they are configured."""
from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from conftest import make_keys
from openai_fake import OpenAIFake
from starlette.applications import Starlette
from test_api_agents import SEED_AGENT_CREATE, SEED_AGENT_UPDATE
from test_api_fixtures import Api
from vendor_fakes.azure import AzureOpenAIFake
from vendor_fakes.deepgram import DeepgramFake
from vendor_fakes.elevenlabs import ElevenLabsFake
from vendor_fakes.sarvam import SarvamFake

from agent_runtime.providers.deepgram import DeepgramSTT
from agent_runtime.providers.elevenlabs import ElevenLabsTTS
from agent_runtime.providers.openai_compat import OpenAICompatLLM
from agent_runtime.providers.sarvam import SarvamSTT
from control_api.app import create_app
from control_api.settings import Settings


class Vendors:
    def __init__(self) -> None:
        self.deepgram = DeepgramFake()
        self.elevenlabs = ElevenLabsFake()
        self.sarvam = SarvamFake()
        self.azure = AzureOpenAIFake()
        self.groq = OpenAIFake(models=["llama-3.3-70b-versatile", "whisper-large-v3"], api_key="gsk-test", require_key=True)

    def settings(self, data_dir: Path, database_url: str) -> Settings:
        secret, publishable = make_keys()
        return Settings(
            data_dir=data_dir, database_url=database_url, secret_key=secret, publishable_key=publishable,
            providers="fake",
            deepgram_api_key=self.deepgram.api_key, deepgram_base_url=self.deepgram.base_url,
            elevenlabs_api_key=self.elevenlabs.api_key, elevenlabs_base_url=self.elevenlabs.base_url,
            sarvam_api_key=self.sarvam.api_key, sarvam_base_url=self.sarvam.base_url,
            azure_api_key=self.azure.api_key, azure_base_url=self.azure.endpoint,
            azure_deployments=["gpt-4.1-mini=prod-mini", "gpt-4o"],
            groq_api_key=self.groq.api_key, groq_base_url=self.groq.base_url,
        )


@pytest_asyncio.fixture
async def vendors() -> AsyncIterator[Vendors]:
    fakes = Vendors()
    async with AsyncExitStack() as stack:
        for fake in (fakes.deepgram, fakes.elevenlabs, fakes.sarvam, fakes.azure, fakes.groq):
            await stack.enter_async_context(fake)  # type: ignore[arg-type]
        yield fakes


async def open_api(settings: Settings, stack: AsyncExitStack) -> Api:
    app: Starlette = create_app(settings)
    await stack.enter_async_context(app.router.lifespan_context(app))
    http = await stack.enter_async_context(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver"))
    return Api(http, app, settings.secret_key or "", settings.publishable_key or "", "", "")


@pytest.fixture
def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / 'talkwire.db'}"


async def test_seed_bodies_are_accepted_with_the_vendors_configured(vendors: Vendors, data_dir: Path,
                                                                    sqlite_url: str) -> None:
    async with AsyncExitStack() as stack:
        api = await open_api(vendors.settings(data_dir, sqlite_url), stack)
        models = {(m["ai_provider"], m["name"]) for m in (await api.ok("GET", "/discovery/models"))["models"]}
        assert {("AZURE", "gpt-4.1-mini"), ("AZURE", "gpt-4o"), ("GROQ", "llama-3.3-70b-versatile")} <= models
        assert ("GROQ", "whisper-large-v3") not in models  # a speech model is not a chat model
        voices = {v["name"]: v for v in (await api.ok("GET", "/discovery/voices"))["voices"]
                  if v["tts_provider"] in ("ELEVENLABS", "SARVAM")}
        assert voices["Riya Rao"]["language"] == "ENGLISH" and voices["Riya Rao"]["gender"] == "FEMALE"
        assert voices["Samay Hinglish Super Premium"]["language"] == "HINDI"
        assert {"Miranda English Voice US", "anushka", "karun"} <= set(voices)
        stt = {(m["provider"], m["name"]) for m in (await api.ok("GET", "/discovery/transcription-models"))["models"]}
        assert {("DEEPGRAM", "nova-2"), ("DEEPGRAM", "nova-3"), ("SARVAM", "saaras:v2"),
                ("SARVAM", "saaras:v3")} <= stt

        agent_id = (await api.ok("POST", "/assistant", json=SEED_AGENT_CREATE))["id"]
        detail = await api.ok("GET", f"/assistant/{agent_id}")
        assert detail["model"] == SEED_AGENT_CREATE["model"] and detail["voice"] == SEED_AGENT_CREATE["voice"]
        assert detail["transcription"] == SEED_AGENT_CREATE["transcription"]

        azure_sarvam = {**copy.deepcopy(SEED_AGENT_UPDATE), "model": {"provider": "AZURE", "model": "gpt-4.1-mini"}}
        await api.ok("PATCH", f"/assistant/{agent_id}", json=azure_sarvam)
        detail = await api.ok("GET", f"/assistant/{agent_id}")
        assert detail["transcription"] == {"provider": "SARVAM", "model": "saaras:v3"}
        assert detail["voice"] == {"provider": "ELEVENLABS", "name": "Miranda English Voice US"}
        await api.ok("PATCH", f"/assistant/{agent_id}", json={"voice": {"provider": "SARVAM", "name": "anushka"}})

        # the seed's speech-to-speech model is refused with a reason
        message = await api.error("PATCH", f"/assistant/{agent_id}", 422, "VALIDATION_ERROR", json=SEED_AGENT_UPDATE)
        assert message.startswith("model") and "speech-to-speech" in message and "not support" in message

        # an agent's choices become instances of the vendors' providers
        registry = api.app.state.runtime.providers
        assert isinstance(registry.create("stt", "DEEPGRAM", "nova-2"), DeepgramSTT)
        assert isinstance(registry.create("stt", "SARVAM", "saaras:v3"), SarvamSTT)
        assert isinstance(registry.create("tts", "ELEVENLABS", "Riya Rao"), ElevenLabsTTS)
        azure = registry.create("llm", "AZURE", "gpt-4.1-mini")
        assert isinstance(azure, OpenAICompatLLM) and "/openai/deployments/prod-mini/" in azure.url
        # the defaults stay the configured mode's
        assert registry.defaults["llm"] == ("FAKE", "echo")


async def test_unconfigured_vendors_are_not_listed(data_dir: Path, sqlite_url: str) -> None:
    secret, publishable = make_keys()
    settings = Settings(data_dir=data_dir, database_url=sqlite_url, secret_key=secret, publishable_key=publishable,
                        providers="fake")
    async with AsyncExitStack() as stack:
        api = await open_api(settings, stack)
        providers = {m["ai_provider"] for m in (await api.ok("GET", "/discovery/models"))["models"]}
        providers |= {v["tts_provider"] for v in (await api.ok("GET", "/discovery/voices"))["voices"]}
        providers |= {m["provider"] for m in (await api.ok("GET", "/discovery/transcription-models"))["models"]}
        assert not providers & {"AZURE", "GROQ", "DEEPGRAM", "SARVAM", "ELEVENLABS"}
        message = await api.error("POST", "/assistant", 422, "VALIDATION_ERROR", json=SEED_AGENT_CREATE)
        assert "/discovery/models" in message


def test_vendor_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TALKWIRE_DEEPGRAM_API_KEY", "dg")
    monkeypatch.setenv("TALKWIRE_AZURE_DEPLOYMENTS", "gpt-4.1-mini=prod-mini, gpt-4o")
    monkeypatch.setenv("TALKWIRE_OPENAI_STT_MODELS", "whisper-large-v3")
    monkeypatch.setenv("TALKWIRE_OPENAI_BASE_URL", "http://gpu-box:8000/v1")
    config = Settings().vendor_config()
    assert config.deepgram_api_key == "dg" and config.deepgram_base_url == "wss://api.deepgram.com"
    assert config.azure_deployments == ("gpt-4.1-mini=prod-mini", "gpt-4o")
    assert config.elevenlabs_base_url == "https://api.elevenlabs.io" and config.elevenlabs_api_key is None
    assert config.sarvam_base_url == "https://api.sarvam.ai"
    assert config.groq_base_url == "https://api.groq.com/openai/v1"
    assert config.openai_stt_models == ("whisper-large-v3",)
    assert config.openai_audio_base_url == "http://gpu-box:8000/v1"
