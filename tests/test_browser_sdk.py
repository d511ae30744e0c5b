"""The browser client (`/sdk/talkwire.js`) and the demo page: served by the real app, run in headless Chromium.

The server here is a small test-local Starlette app on a real 127.0.0.1 port: it serves the real SDK and
demo page (control_api/routes/web.py) and answers Phase 1 and Phase 2 with a real `WebRtcLeg`. The agent
is an honest test double (`EchoAgent`): it says a fixed line on the data channel, plays a tone, echoes
every data-channel event back, and records the caller's audio so the test can check what the browser's
fake microphone sent.

Reusable for other browser tests: the `chromium` fixture (a launcher: `await chromium(fake_mic_wav)` →
a Playwright `Browser`), `launch_chromium()` and `CHROMIUM_ARGS`.
"""
from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from control_api.routes import web
from media.pacing import MediaClock
from signalling.webrtc import InvalidOffer, WebRtcLeg
from webrtc_caller import dominant_frequency, tone, write_wav

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
API_KEY = "pk_live_browser_test"
AGENT_ID = "agent-echo"
MIC_TONE_HZ = 440
AGENT_TONE_HZ = 880
AGENT_LINE = "Hello from the echo double"


async def launch_chromium(playwright, fake_mic_wav: Path | None = None, **kwargs):
    """Headless Debian Chromium with a fake microphone playing `fake_mic_wav` (it loops: pad it with silence)."""
    args = list(CHROMIUM_ARGS)
    if fake_mic_wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={fake_mic_wav}")
    return await playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=args, ignore_default_args=["--mute-audio"], **kwargs
    )


@pytest.fixture
async def chromium() -> AsyncIterator[Callable[..., Awaitable]]:
    """`await chromium(wav)` launches a browser; all of them are closed after the test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browsers = []

        async def launch(fake_mic_wav: Path | None = None, **kwargs):
            browser = await launch_chromium(playwright, fake_mic_wav, **kwargs)
            browsers.append(browser)
            return browser

        yield launch
        for browser in browsers:
            await browser.close()


@pytest.fixture
def mic_wav(tmp_path: Path) -> Path:
    """1 s of a 440 Hz tone then 2 s of silence (Chromium loops the file)."""
    path = tmp_path / "mic.wav"
    write_wav(path, np.concatenate((tone(MIC_TONE_HZ, 1.0), np.zeros(96000, dtype=np.int16))))
    return path


# ---- the test-local server ------------------------------------------------------------------------------

class EchoAgent:
    """Test double for the conversation: fixed line + tone out, events echoed, caller audio recorded."""

    def __init__(self, leg: WebRtcLeg) -> None:
        self.leg = leg
        self.events: list[dict] = []
        self.heard: list[np.ndarray] = []
        self.tasks = [asyncio.create_task(self._events()), asyncio.create_task(self._audio())]

    async def _events(self) -> None:
        await self.leg.send_event({"type": "agent_state", "state": "speaking"})
        await self.leg.send_event({"type": "transcription", "role": "agent", "text": AGENT_LINE, "is_final": True})
        self.leg.outbound.push(tone(AGENT_TONE_HZ, 2.0))
        await self.leg.send_event({"type": "agent_state", "state": "listening"})
        while True:
            event = await self.leg.events.get()
            self.events.append(event)
            await self.leg.send_event({"type": "echo", "received": event})

    async def _audio(self) -> None:
        while (frame := await self.leg.inbound.get()) is not None:
            self.heard.append(frame.samples)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.leg.hangup("test_over")


class EchoServer:
    def __init__(self, clock: MediaClock) -> None:
        self.clock = clock
        self.agents: list[EchoAgent] = []
        self.base_url = ""
        self.app = Starlette(routes=[
            Route("/", web.index),
            Route("/sdk/{path:path}", web.sdk_file),
            Route("/harness", self.harness),
            Route("/demo/config", self.demo_config),
            Route("/calls/create", self.create_call, methods=["POST"]),
            Route("/discovery/ice-servers", self.ice_servers),
            Route("/webrtc", self.offer, methods=["POST"]),
        ])

    async def harness(self, request: Request) -> HTMLResponse:
        return HTMLResponse(
            '<!doctype html><script type="module">'
            'import { TalkwireClient } from "/sdk/talkwire.js";'
            "window.TalkwireClient = TalkwireClient; window.ready = true;"
            "</script>"
        )

    async def demo_config(self, request: Request) -> JSONResponse:
        return JSONResponse({"publishable_key": API_KEY, "agents": [{"id": AGENT_ID, "name": "Echo double"}]})

    def _authorized(self, request: Request) -> JSONResponse | None:
        if request.headers.get("x-api-key") != API_KEY:
            return JSONResponse({"error": {"code": "INVALID_API_KEY", "message": "API key is invalid"}}, 401)
        return None

    async def create_call(self, request: Request) -> JSONResponse:
        if (denied := self._authorized(request)) is not None:
            return denied
        body = await request.json()
        if body.get("agent_id") != AGENT_ID:
            return JSONResponse({"error": {"code": "AGENT_NOT_FOUND", "message": "No such agent"}}, 404)
        call_id = str(uuid.uuid4())
        return JSONResponse({
            "call_id": call_id,
            "status": "in-progress",
            "worker_url": f"{self.base_url}/webrtc?agent={AGENT_ID}_{call_id}",
        })

    async def ice_servers(self, request: Request) -> JSONResponse:
        if (denied := self._authorized(request)) is not None:
            return denied
        return JSONResponse({"ice_servers": []})

    async def offer(self, request: Request) -> JSONResponse:
        body = await request.json()
        try:
            leg, answer = await WebRtcLeg.accept(body["sdp"], clock=self.clock, host_addresses=["127.0.0.1"])
        except InvalidOffer as exc:
            return JSONResponse({"error": {"code": "INVALID_SDP", "message": str(exc)}}, 400)
        self.agents.append(EchoAgent(leg))
        return JSONResponse({"sdp": answer, "type": "answer"})


@pytest.fixture
async def echo_server() -> AsyncIterator[EchoServer]:
    clock = MediaClock()
    server = EchoServer(clock)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    uv = uvicorn.Server(uvicorn.Config(server.app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    while not uv.started:
        assert not task.done(), "test server failed to start"
        await asyncio.sleep(0.02)
    try:
        yield server
    finally:
        for agent in server.agents:
            await agent.stop()
        uv.should_exit = True
        await task
        sock.close()
        await clock.stop()


async def until(check: Callable[[], object], timeout: float = 20, what: str = "condition") -> object:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := check()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return result


INBOUND_AUDIO_STATS = """async () => {
  const pc = (window.client || window.talkwireClient).pc;
  if (!pc) return null;
  let found = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") found = {
      bytes: s.bytesReceived, packets: s.packetsReceived, energy: s.totalAudioEnergy || 0,
    };
  });
  return found;
}"""


async def wait_for_agent_audio(page, min_energy: float = 0.01, timeout: float = 20) -> dict:
    """Until Chromium has decoded audible agent audio (getStats totalAudioEnergy); returns the stats."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        stats = await page.evaluate(INBOUND_AUDIO_STATS)
        if stats and stats["energy"] >= min_energy:
            return stats
        if loop.time() > deadline:
            raise AssertionError(f"no audible agent audio in the browser: {stats}")
        await asyncio.sleep(0.1)


# ---- tests ----------------------------------------------------------------------------------------------

@pytest.mark.browser
async def test_sdk_connects_hears_the_agent_and_talks_on_the_data_channel(chromium, echo_server, mic_wav):
    browser = await chromium(mic_wav)
    page = await browser.new_page()
    await page.goto(f"{echo_server.base_url}/harness")
    await page.wait_for_function("window.ready === true")
    state = await page.evaluate(
        """async ({ agentId, apiKey }) => {
          const events = [];
          window.events = events;
          const client = new TalkwireClient({
            agentId, apiKey,
            audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
            onSessionStarted: (s) => events.push(["session_started", s.callId, s.serverUrl]),
            onConnected: () => events.push(["connected"]),
            onDisconnected: () => events.push(["disconnected"]),
            onError: (e) => events.push(["error", e.code, e.message]),
            onTranscription: (text, isFinal, role) => events.push(["transcription", text, isFinal, role]),
            onAgentState: (s) => events.push(["agent_state", s]),
            onRemoteTrack: (track) => events.push(["remote_track", track.kind]),
            trackRouteContext: false,  // only the sendEvent below reaches the echo double
          });
          client.on("message", (m) => events.push(["message", m]));
          window.client = client;
          await client.connect();
          return client.state;
        }""",
        {"agentId": AGENT_ID, "apiKey": API_KEY},
    )
    assert state == "connected"

    await page.wait_for_function(
        "window.events.some((e) => e[0] === 'transcription')", timeout=20000
    )
    events = await page.evaluate("window.events")
    kinds = [e[0] for e in events]
    assert kinds.index("session_started") < kinds.index("connected")
    assert ["remote_track", "audio"] in events
    assert ["transcription", AGENT_LINE, True, "agent"] in events
    assert ["agent_state", "speaking"] in events
    assert not [e for e in events if e[0] == "error"]

    # Agent audio was received and decoded to something audible.
    stats = await wait_for_agent_audio(page)
    assert stats["bytes"] > 1000

    # Client → server events, merged into one message; the double echoes them back.
    await page.evaluate("window.client.sendEvent('client_context_update', { current_page: '/pricing', type: 'x' })")
    await page.wait_for_function("window.events.some((e) => e[0] === 'message' && e[1].type === 'echo')")
    agent = echo_server.agents[0]
    assert agent.events == [{"type": "client_context_update", "current_page": "/pricing"}]

    # The fake microphone's tone reached the leg as audio.
    await until(lambda: sum(np.abs(s).max() > 2000 for s in agent.heard) >= 25, what="the browser's mic tone")
    voiced = np.concatenate([s for s in agent.heard if np.abs(s).max() > 2000])
    assert abs(dominant_frequency(voiced) - MIC_TONE_HZ) < 20

    # Hanging up in the browser ends the server's leg.
    await page.evaluate("window.client.disconnect()")
    assert await asyncio.wait_for(agent.leg.ended, 30) == "remote_hangup"
    events = await page.evaluate("window.events")
    assert events[-1] == ["disconnected"]
    assert await page.evaluate("window.client.state") == "disconnected"


@pytest.mark.browser
async def test_sdk_reports_the_servers_error(chromium, echo_server):
    browser = await chromium()
    page = await browser.new_page()
    await page.goto(f"{echo_server.base_url}/harness")
    await page.wait_for_function("window.ready === true")
    outcome = await page.evaluate(
        """async ({ agentId }) => {
          const errors = [];
          const client = new TalkwireClient({ agentId, apiKey: "pk_live_wrong", onError: (e) => errors.push(e.code) });
          let rejected = null;
          try { await client.connect(); } catch (e) { rejected = { code: e.code, status: e.status }; }
          let sendError = null;
          try { client.sendEvent("too_early"); } catch (e) { sendError = e.code; }
          return { errors, rejected, state: client.state, sendError };
        }""",
        {"agentId": AGENT_ID},
    )
    assert outcome == {
        "errors": ["INVALID_API_KEY"],
        "rejected": {"code": "INVALID_API_KEY", "status": 401},
        "state": "disconnected",
        "sendError": "DATA_CHANNEL_NOT_OPEN",
    }
    assert echo_server.agents == []


@pytest.mark.browser
async def test_server_hangup_disconnects_the_client(chromium, echo_server, mic_wav):
    browser = await chromium(mic_wav)
    page = await browser.new_page()
    await page.goto(f"{echo_server.base_url}/harness")
    await page.wait_for_function("window.ready === true")
    await page.evaluate(
        """async ({ agentId, apiKey }) => {
          window.events = [];
          window.client = new TalkwireClient({
            agentId, apiKey, onDisconnected: () => window.events.push("disconnected"),
          });
          await window.client.connect();
        }""",
        {"agentId": AGENT_ID, "apiKey": API_KEY},
    )
    await echo_server.agents[0].leg.hangup("agent_hangup")
    await page.wait_for_function("window.events.includes('disconnected')", timeout=20000)
    assert await page.evaluate("window.client.state") == "disconnected"

    # The same client can call again: a fresh Phase 1 (new call, new worker URL) and Phase 2.
    first_call = await page.evaluate("window.client.callId")
    await page.evaluate("window.client.connect()")
    assert await page.evaluate("window.client.state") == "connected"
    assert await page.evaluate("window.client.callId") != first_call
    assert len(echo_server.agents) == 2


@pytest.mark.browser
async def test_demo_page_talk_and_hang_up(chromium, echo_server, mic_wav):
    browser = await chromium(mic_wav)
    page = await browser.new_page()
    await page.goto(f"{echo_server.base_url}/?agent={AGENT_ID}&audio_processing=off")
    await page.wait_for_selector(f"#agent option[value='{AGENT_ID}']", state="attached")
    assert await page.text_content("#agent option") == "Echo double"
    assert await page.input_value("#agent") == AGENT_ID

    await page.click("#talk")
    await page.wait_for_selector("#call-state[data-state='connected']", timeout=20000)
    agent_line = page.locator(".line.agent")
    await agent_line.wait_for(timeout=20000)
    assert await agent_line.text_content() == AGENT_LINE
    await page.wait_for_selector("#agent-state[data-state='listening']", timeout=20000)
    assert await page.text_content("#talk") == "Hang up"
    await wait_for_agent_audio(page)
    assert await page.evaluate("document.getElementById('agent-audio').srcObject !== null")
    assert not await page.is_visible("#error")
    assert await page.evaluate("window.talkwireClient.options.audio") == {
        "echoCancellation": False, "noiseSuppression": False, "autoGainControl": False,
    }
    agent = echo_server.agents[0]
    await until(lambda: sum(np.abs(s).max() > 2000 for s in agent.heard) >= 25, what="the browser's mic tone")
    voiced = np.concatenate([s for s in agent.heard if np.abs(s).max() > 2000])
    assert abs(dominant_frequency(voiced) - MIC_TONE_HZ) < 20

    await page.click("#talk")
    await page.wait_for_selector("#call-state[data-state='idle']", timeout=20000)
    assert await page.text_content("#talk") == "Talk"
    assert await asyncio.wait_for(echo_server.agents[0].leg.ended, 30) == "remote_hangup"


# ---- the routes on the real app (no browser) ---------------------------------------------------------------

async def test_demo_page_and_sdk_are_served(client):
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'from "/sdk/talkwire.js"' in page.text

    sdk = await client.get("/sdk/talkwire.js")
    assert sdk.status_code == 200
    assert sdk.headers["content-type"].startswith("text/javascript")
    assert sdk.headers["access-control-allow-origin"] == "*"  # module scripts load cross-origin in CORS mode
    assert "export class TalkwireClient" in sdk.text


@pytest.mark.parametrize("path", ["/sdk/missing.js", "/sdk/../index.html", "/sdk/%2e%2e/%2e%2e/settings.py", "/sdk/"])
async def test_sdk_route_serves_only_files_under_sdk(client, path):
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


async def test_demo_config_lists_the_default_clients_agents_and_publishable_key(client, settings):
    response = await client.get("/demo/config")
    assert response.status_code == 200
    body = response.json()
    assert body["publishable_key"] == settings.publishable_key
    assert "Demo Agent" in [a["name"] for a in body["agents"]]
    assert all(set(a) == {"id", "name"} and a["id"] for a in body["agents"])


@pytest.mark.browser
async def test_closing_the_tab_hangs_up(chromium, echo_server, mic_wav):
    browser = await chromium(mic_wav)
    page = await browser.new_page()
    await page.goto(f"{echo_server.base_url}/harness")
    await page.wait_for_function("window.ready === true")
    await page.evaluate(
        """async ({ agentId, apiKey }) => {
          window.client = new TalkwireClient({ agentId, apiKey });
          await window.client.connect();
        }""",
        {"agentId": AGENT_ID, "apiKey": API_KEY},
    )
    await page.close()
    # The SDK hangs up on pagehide; without it the server would only notice when ICE consent expires (30 s).
    assert await asyncio.wait_for(echo_server.agents[0].leg.ended, 15) == "remote_hangup"
