"""A person's first call, as the README promises it: the demo page in a real browser against the real server.

Headless Debian Chromium (fake microphone playing a Piper-made sentence after some silence) opens the demo
page served by `talkwire serve`, clicks Talk, and the page must show the caller's words transcribed and the
agent's answer, with audible agent audio decoded in the browser. Whisper and Piper are the real local models;
the LLM is the OPENAI provider against a local fake, so the answer is known.
"""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from control_api.settings import Settings
from media.resample import resample
from openai_fake import openai_fake  # noqa: F401  (fixture)
from test_browser_sdk import chromium, wait_for_agent_audio  # noqa: F401  (fixture)
from test_e2e_webrtc import demo_agent_on, piper_speech, serving, words
from webrtc_caller import write_wav

pytestmark = [pytest.mark.browser, pytest.mark.models]

SPOKEN = "Please book a table for two people."
ANSWER = "Done, your table for two is booked."
LEAD_SILENCE_S = 9  # the welcome message plays meanwhile; the fake microphone file then loops


async def test_demo_page_call_in_chromium(settings: Settings, openai_fake, chromium, tmp_path) -> None:
    openai_fake.add_text(ANSWER)
    speech, rate = await piper_speech(SPOKEN)
    mic = tmp_path / "mic.wav"
    silence = np.zeros(48000 * LEAD_SILENCE_S, dtype=np.int16)
    write_wav(mic, np.concatenate([silence, resample(speech, rate, 48000), silence, silence]))

    local = settings.model_copy(update={
        "providers": "local", "openai_base_url": openai_fake.base_url, "openai_api_key": openai_fake.api_key})
    async with serving(local) as server:
        agent_id = await demo_agent_on(server, {"provider": "OPENAI", "model": openai_fake.models[0]})
        browser = await chromium(mic)
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{server.base_url}/?agent={agent_id}&audio_processing=off")
        await page.click("#talk")

        # The welcome message is heard in the browser.
        await wait_for_agent_audio(page, timeout=60)

        async def lines(kind: str) -> list[str]:
            return await page.eval_on_selector_all(f".line.{kind}", "nodes => nodes.map(n => n.textContent)")

        user_lines: list[str] = []

        async def spoken_line() -> bool:
            user_lines[:] = await lines("user")
            return any(words(SPOKEN) == words(line)[-len(words(SPOKEN)):] for line in user_lines)

        await until_async(spoken_line, timeout=90, what=f"the caller's words in the transcript (got {user_lines})")

        async def answered() -> bool:
            return any("booked" in line for line in await lines("agent"))

        await until_async(answered, timeout=60, what="the agent's answer in the transcript")
        stats = await wait_for_agent_audio(page, min_energy=0.05, timeout=60)
        assert stats["energy"] >= 0.05
        await page.click("#talk")  # hang up
        assert not errors, errors

    request = openai_fake.chat_requests[-1].body
    assert any(m["role"] == "user" and words(m["content"]) == words(SPOKEN) for m in request["messages"])


async def until_async(check, *, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)
