"""Calls through a live `talkwire serve` whose cloud vendors are the local fakes (`VendorStack`): one server per
test module, a web call made by the aiortc caller, a phone call answered by sipp, and readers of the record.

The server's SIP and HTTP plumbing come from test_e2e_sip_calls (`serving`, `Api`, the sipp scenario
builder); this adds what the vendor tests share.
"""
from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from conftest import make_keys
from sipp.harness import Sipp, make_speech
from test_e2e_sip_calls import Api, serving
from webrtc_caller import RATE, WebRtcCaller, dominant_frequency, to_48k

from control_api.settings import Settings
from vendor_fakes.stack import VendorStack


def module_settings(data_dir: Path, template: Path) -> Settings:
    """A server's settings on a fresh data dir holding the migrated template database (FAKE defaults)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, data_dir / "talkwire.db")
    secret, publishable = make_keys()
    return Settings(data_dir=data_dir, host="127.0.0.1", port=8080, secret_key=secret, publishable_key=publishable,
                    providers="fake")


@asynccontextmanager
async def vendor_server(settings: Settings, vendors: VendorStack, **overrides: Any) -> AsyncIterator[Api]:
    """A live server whose vendor keys and base URLs point at `vendors` (plus `overrides`)."""
    update = {**vendors.settings(), "azure_deployments": ["gpt-4.1-mini=prod-mini", "gpt-4o"],
              "provider_connect_timeout": 2.0, "provider_first_result_timeout": 3.0, **overrides}
    async with serving(settings, **update) as api:
        yield api


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def vendors() -> AsyncIterator[VendorStack]:
    """Every vendor fake, once per test module (import this fixture into the module)."""
    async with VendorStack() as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(vendors: VendorStack, tmp_path_factory: pytest.TempPathFactory,
              migrated_sqlite_template: Path) -> AsyncIterator[Api]:
    """The real server on those fakes, once per test module."""
    settings = module_settings(tmp_path_factory.mktemp("vendor-server") / "data", migrated_sqlite_template)
    async with vendor_server(settings, vendors) as server:
        yield server


def caller_speech(text: str, workdir: Path) -> np.ndarray:
    """`text` spoken by espeak-ng, at 48 kHz with one second of silence after it for the web caller's
    microphone; sipp's `speech.ulaw` of it is left in `workdir`."""
    _, _, decoded = make_speech(text, workdir)
    return np.concatenate([to_48k(decoded, 8000), np.zeros(RATE, dtype=np.int16)])


async def agent_from(api: Api, body: dict[str, Any]) -> str:
    """An agent created with `body` verbatim, then made active (the seed's bodies create it inactive)."""
    agent_id: str = (await api.ok("POST", "/assistant", json=body))["id"]
    await api.ok("PATCH", f"/assistant/{agent_id}", json={"active": True, "call_end_duration": 0,
                                                          "call_user_alert_duration": 0})
    return agent_id


async def dial_sipp(api: Api, agent_id: str, sipp: Sipp) -> str:
    """The agent calls sipp through a trunk stored for it (this server's trunk is per call, sipp's port is)."""
    number = f"+1555{sipp.port:07d}"
    trunk = await api.ok("POST", "/sip-trunks", json={"name": f"sipp {sipp.port}", "host": "127.0.0.1",
                                                       "port": sipp.port})
    await api.ok("POST", "/phone-numbers/import",
                 json={"phone_number": number, "agent_id": agent_id, "trunk_id": trunk["id"]})
    return await api.dial(agent_id, "+15551230001", from_number=number)


def listening(message: dict[str, Any]) -> bool:
    return message.get("type") == "agent_state" and message.get("state") == "listening"


def final_of(role: str, text: str | None = None) -> Any:
    def match(message: dict[str, Any]) -> bool:
        return (message.get("type") == "transcription" and message.get("role") == role
                and bool(message.get("is_final")) and (text is None or message.get("text") == text))
    return match


def tone_of(samples: np.ndarray, rate: int = RATE) -> float:
    """The dominant frequency of the 20 ms frames of `samples` that are not silent (the TTS fakes' tones)."""
    step = rate // 50
    frames = samples[:len(samples) // step * step].reshape(-1, step).astype(np.float64)
    loud = frames[np.sqrt((frames ** 2).mean(axis=1)) > 300]
    return dominant_frequency(loud.reshape(-1), rate) if len(loud) else 0.0


def tone_share(samples: np.ndarray, frequency: float, rate: int = RATE) -> float:
    """The share of the energy of `samples` within 10 Hz of `frequency` (a fake's tone: near 1; speech: near 0)."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples)))) ** 2
    near = np.abs(np.fft.rfftfreq(len(samples), 1 / rate) - frequency) <= 10
    return float(spectrum[near].sum() / max(spectrum.sum(), 1e-9))


def loud_seconds(samples: np.ndarray, rate: int = RATE) -> float:
    """How much of `samples` is not silent, by 20 ms frames."""
    step = rate // 50
    frames = samples[:len(samples) // step * step].reshape(-1, step).astype(np.float64)
    return float((np.sqrt((frames ** 2).mean(axis=1)) > 300).sum() / 50)


@dataclass
class HeardTurn:
    user: str  # the caller's final transcription
    agent: str  # the agent's final transcription of its answer
    audio: np.ndarray  # what the caller heard from starting to speak until the agent listened again (48 kHz)


async def web_call(api: Api, agent_id: str, speech: np.ndarray, *, turns: int = 1, timeout: float = 30,
                   before_turn: Callable[[int], None] | None = None) -> tuple[WebRtcCaller, list[HeardTurn]]:
    """A web call: after the welcome, the caller says `speech` `turns` times (`before_turn(i)` first), each
    time waiting until the agent's answer was spoken (it listens again); then it hangs up."""
    caller = WebRtcCaller()
    heard: list[HeardTurn] = []
    try:
        await caller.call(api.server.base_url, agent_id, api.server.publishable_key)
        await caller.wait_for_message(listening, timeout=timeout)
        for index in range(turns):
            if before_turn is not None:
                before_turn(index)
            mark, frames = len(caller.messages), len(caller.heard)
            caller.mic.play(speech)
            user = await caller.wait_for_message(final_of("user"), timeout=timeout, after=mark)
            agent = await caller.wait_for_message(final_of("agent"), timeout=timeout, after=mark)
            await caller.wait_for_message(listening, timeout=timeout, after=mark)
            audio = [f.samples for f in caller.heard[frames:]] or [np.zeros(0, dtype=np.int16)]
            heard.append(HeardTurn(user["text"], agent["text"], np.concatenate(audio)))
    finally:
        await caller.close()
    return caller, heard


def events(record: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in record["timeline"] if e["kind"] == kind]


def turns(record: dict[str, Any], role: str) -> list[str]:
    return [t["text"] for t in record["transcript"] if t["role"] == role]


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def metric(text: str, name: str, **labels: str) -> float:
    """A sample's value from a Prometheus exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            label_text, _, value = line[len(name) + 1:].rpartition("} ")
            parts = ",".join(sorted(label_text.split(",")))
            if parts == wanted:
                return float(value)
    return 0.0
