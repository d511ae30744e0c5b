"""A whole web call through the real server, as a browser makes it (issue 2's first "must show").

`talkwire serve` on a loopback port with the embedded local stack (Whisper tiny.en, Piper) and the OPENAI
LLM provider pointed at a local OpenAI-compatible fake that records what it was asked. An aiortc caller does
Phase 1 (`POST /calls/create`) and Phase 2 (offer to `worker_url`), hears the welcome message, says a
sentence made with Piper, and must get that sentence back as a final transcription and hear the answer.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from agent_runtime.providers.piper import PiperTTS
from control_api.settings import Settings
from conftest import LiveServer, run_live_server
from openai_fake import openai_fake  # noqa: F401  (fixture)
from webrtc_caller import WebRtcCaller

pytestmark = pytest.mark.models

SPOKEN = "What time does the store open tomorrow?"
ANSWER = "The store opens at nine in the morning."


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[LiveServer]:
    """The live server started off this loop, so fakes served by this loop can answer it meanwhile."""
    manager = run_live_server(settings, startup_timeout=120)
    server = await asyncio.to_thread(manager.__enter__)
    try:
        yield server
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


async def piper_speech(text: str) -> tuple[np.ndarray, int]:
    tts = PiperTTS()
    chunks = [chunk async for chunk in tts.synthesize(text)]
    return np.concatenate(chunks), tts.sample_rate


async def demo_agent_on(server: LiveServer, model: dict[str, str]) -> str:
    """The seeded demo agent's id, after switching its LLM to `model` through the API."""
    headers = {"X-API-Key": server.secret_key}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        response = await http.get("/assistant", headers=headers)
        response.raise_for_status()
        agent_id = response.json()["agents"][0]["id"]
        response = await http.patch(f"/assistant/{agent_id}", headers=headers, json={"model": model})
        response.raise_for_status()
        return agent_id


async def test_web_call_end_to_end(settings: Settings, openai_fake, tmp_path: Path) -> None:
    openai_fake.add_text(ANSWER)
    local = settings.model_copy(update={
        "providers": "local",
        "openai_base_url": openai_fake.base_url,
        "openai_api_key": openai_fake.api_key,
    })
    speech, rate = await piper_speech(SPOKEN)

    async with serving(local) as server:
        agent_id = await demo_agent_on(server, {"provider": "OPENAI", "model": openai_fake.models[0]})
        caller = WebRtcCaller()
        try:
            await caller.call(server.base_url, agent_id, server.publishable_key)
            await caller.wait_connected()
            # The welcome message is spoken first.
            await caller.wait_for_audio(seconds=1.0, timeout=60)
            await caller.wait_for_message(lambda m: m.get("type") == "agent_state" and m["state"] == "listening",
                                          timeout=60)
            heard_before = len(caller.nonsilent())
            caller.mic.play(np.concatenate([speech_48k(speech, rate), np.zeros(48000, dtype=np.int16)]))

            final = await caller.wait_for_message(
                lambda m: m.get("type") == "transcription" and m.get("role") == "user" and m.get("is_final"),
                timeout=60)
            assert words(final["text"]) == words(SPOKEN)

            agent_line = await caller.wait_for_message(
                lambda m: m.get("type") == "transcription" and m.get("role") == "agent"
                and m.get("is_final") and "nine" in m.get("text", ""), timeout=60)
            assert words(agent_line["text"]) == words(ANSWER)
            for _ in range(3000):  # the answer is heard: ≥ 0.5 s more non-silent audio than before it
                if len(caller.nonsilent()) > heard_before + 25:
                    break
                await asyncio.sleep(0.02)
            assert len(caller.nonsilent()) > heard_before + 25
        finally:
            await caller.close()

        # The LLM was asked with the agent's prompt and the caller's words.
        request = openai_fake.chat_requests[-1].body
        assert request["stream"] is True
        assert request["messages"][0]["role"] == "system"
        assert any(m["role"] == "user" and words(m["content"]) == words(SPOKEN) for m in request["messages"])

        # The call record holds both turns and a recording.
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            for _ in range(100):
                call = (await http.get(f"/calls/{caller.call_id}", headers={"X-API-Key": server.secret_key})).json()
                if call["status"] == "completed":
                    break
                await asyncio.sleep(0.1)
        assert call["status"] == "completed"
        roles = [turn["role"] for turn in call["transcript"]]
        assert "user" in roles and "agent" in roles


def speech_48k(samples: np.ndarray, rate: int) -> np.ndarray:
    from media.resample import resample

    return resample(samples, rate, 48000)
