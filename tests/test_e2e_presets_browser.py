"""The real PresetRenderer with the real talkwire.js in headless Chromium, against the real server.

A customer's site (its own origin: a small Starlette app serving a shop page, the SDK files from
control_api/static/sdk, a slots API and a media webhook) embeds the SDK; the page's TalkwireClient makes a
real web call to `talkwire serve` (FAKE STT/TTS, OPENAI LLM on `openai_fake`, which scripts the preset tool
calls). Chromium's fake microphone plays silence, so only the scripted turns happen. Each test starts a turn
with `sendActionTrigger`, the renderer shows the preset, the test acts like the user, and the tool result
must reach the LLM (and the call timeline).
"""
from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.routing import Route

from presets.catalog import seed_bodies
from test_browser_sdk import launch_chromium
from test_e2e_tools_protocol import FAKE_STACK, Env, call_record, tool_messages, tools_server, wait_requests
from test_media_upload import png
from webrtc_caller import write_wav

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

SDK_DIR = Path(__file__).resolve().parents[1] / "control_api" / "static" / "sdk"

PAGE = """<!doctype html><html><head><title>Shop</title></head><body>
<h1>Shop</h1>
<main id="view"><button id="buy-button" onclick="window.bought = (window.bought||0)+1">Buy now</button>
<input id="answer-input" value="x ="></main>
<script type="module">
import { TalkwireClient } from "/sdk/talkwire.js";
import { PresetRenderer } from "/sdk/presets.js";
const params = new URLSearchParams(location.search);
window.seen = [];
window.messages = [];
window.start = async (options = {}) => {
  window.client = new TalkwireClient({
    agentId: params.get("agent"), apiKey: params.get("key"), baseUrl: params.get("api"), playAudio: false,
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false }, ...options,
  });
  client.on("tool_call", (call) => window.seen.push(call));
  client.on("message", (message) => window.messages.push(message));
  window.renderer = new PresetRenderer(client, { navigateWaitMs: 300, elementWaitMs: 3000 });
  await client.connect();
};
window.ready = true;
</script></body></html>"""


@dataclass
class Site:
    """The customer's site: page, SDK files, a slots API, a media webhook (records what it receives)."""

    url: str = ""
    hook_requests: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def page(request: Request) -> HTMLResponse:
            return HTMLResponse(PAGE)

        async def sdk(request: Request) -> FileResponse:
            return FileResponse(SDK_DIR / request.path_params["name"], media_type="text/javascript")

        async def slots(request: Request) -> JSONResponse:
            date = request.query_params.get("date", "")
            return JSONResponse({"slots": [f"{date} 09:00", f"{date} 14:30"]})

        async def hook(request: Request) -> JSONResponse:
            form = await request.form()
            media = form["media"]
            self.hook_requests.append({"reason": form.get("reason"), "session_id": form.get("session_id"),
                                       "data": await media.read(), "content_type": media.content_type})
            return JSONResponse({"interrupt": False, "result_text": "The document shows Jane Doe."})

        return Starlette(routes=[
            Route("/", page), Route("/checkout", page), Route("/sdk/{name:str}", sdk), Route("/slots", slots),
            Route("/hook", hook, methods=["POST"])])


def preset_tool(preset_id: str, **client_fields: Any) -> dict[str, Any]:
    body = seed_bodies()[preset_id]
    body["client_fields"] = {**body["client_fields"], **client_fields}
    return body


@dataclass
class Browsing:
    env: Env
    site: Site
    agent_id: str
    browser: Any


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browsing(tmp_path_factory: pytest.TempPathFactory, migrated_sqlite_template: Path) -> AsyncIterator[Browsing]:
    from playwright.async_api import async_playwright

    base = tmp_path_factory.mktemp("presets-browser")
    site = Site()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(site.app(), log_level="warning", lifespan="off"))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    site.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    silence = base / "silence.wav"
    write_wav(silence, np.zeros(48000 * 5, dtype=np.int16))
    try:
        async with tools_server(base, migrated_sqlite_template) as env, async_playwright() as playwright:
            agent = await env.api("POST", "/assistant", json={
                "name": "Presets agent", "welcome_message": "", "agent_prompt": "You drive the page.", **FAKE_STACK,
                "model": {"provider": "OPENAI", "model": env.fake.models[0]},
                "call_end_duration": 0, "call_user_alert_duration": 0})
            for body in (
                preset_tool("vanira_form"),
                preset_tool("vanira_calendar", timezone="UTC", slots_api_headers="{}",
                            slots_api_url=site.url + "/slots?date={{date}}&tz={{timezone}}"),
                preset_tool("vanira_upload"),
                preset_tool("vanira_navigate"),
                preset_tool("vanira_click_element"),
                preset_tool("vanira_type_text", route="/checkout", delay_ms=5),
                preset_tool("vanira_page_scan"),
                preset_tool("vanira_point_at"),
                {"name": "pick_colour", "description": "Let the user pick a colour.", "type": "client",
                 "execution_mode": "blocking", "parameters": []},
            ):
                tool = await env.api("POST", "/tools", json=body)
                await env.api("POST", f"/assistant/{agent['id']}/tools", json={"tool_id": tool["id"]})
            await env.api("POST", f"/assistant/{agent['id']}/media-handlers", json={
                "reason": "upload", "route": "webhook", "webhook_url": site.url + "/hook", "inject_as": "system",
                "interrupt": False})
            browser = await launch_chromium(playwright, silence)
            try:
                yield Browsing(env, site, agent["id"], browser)
            finally:
                await browser.close()
    finally:
        server.should_exit = True
        await task
        sock.close()


async def open_call(b: Browsing, path: str = "/") -> Any:
    """A fresh tab on the site, connected to the agent."""
    context = await b.browser.new_context()
    page = await context.new_page()
    page.errors = []
    page.console = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("console", lambda message: page.console.append(message.text))
    query = f"?agent={b.agent_id}&key={b.env.server.publishable_key}&api={b.env.server.base_url}"
    await page.goto(b.site.url + path + query)
    await page.wait_for_function("window.ready === true")
    await page.evaluate("window.start()")
    return page


async def hang_up(page: Any) -> str:
    call_id = await page.evaluate("client.callId")
    await page.evaluate("client.disconnect()")
    await page.context.close()
    return call_id


async def turn(b: Browsing, page: Any, *calls: tuple[str, dict[str, Any]], then: str = "Done.") -> int:
    """Script the LLM (tool calls, then a text reply) and start a turn from the page; returns the index of
    the turn's first LLM request."""
    fake = b.env.fake
    before = len(fake.chat_requests)
    fake.add_tool_calls(*calls)
    fake.add_text(then)
    await page.evaluate("client.sendActionTrigger('help_me', {page: location.pathname})")
    return before


async def tool_result(b: Browsing, index: int) -> Any:
    """The tool result the LLM got in request `index` (the continuation after a tool round)."""
    await wait_requests(b.env.fake, index + 1, timeout=60)
    return json.loads(tool_messages(b.env.fake.chat_requests[index].body)[-1]["content"])


async def test_form_and_calendar(browsing: Browsing) -> None:
    b = browsing
    page = await open_call(b)
    try:
        first = await turn(b, page, ("collect_user_data", {"reason": "To book your table"}))
        modal = page.locator('[data-talkwire-preset="vanira_form"]')
        await modal.wait_for(timeout=60_000)
        assert await modal.locator("[data-talkwire-description]").inner_text() == "To book your table"
        await modal.locator('[data-talkwire-field="Name"]').fill("Teja")
        await modal.locator('[data-talkwire-field="Email"]').fill("teja@example.com")
        await modal.locator('[data-talkwire-field="Phone"]').fill("+14155550100")
        await modal.locator('[data-talkwire-action="submit"]').click()
        assert await tool_result(b, first + 1) == {"status": "success", "values": {
            "Name": "Teja", "Email": "teja@example.com", "Phone": "+14155550100"}}

        second = await turn(b, page, ("display_booking_calendar", {"reason": "Pick a time"}))
        slot = page.locator("[data-talkwire-slot]").nth(1)
        await slot.wait_for(timeout=60_000)
        await slot.click()
        await page.locator('[data-talkwire-preset="vanira_calendar"] [data-talkwire-action="confirm"]').click()
        booked = await tool_result(b, second + 1)
        assert booked["status"] == "success" and booked["time"].endswith("14:30") and booked["timezone"] == "UTC"
        assert [c["preset_id"] for c in await page.evaluate("window.seen")] == ["vanira_form", "vanira_calendar"]
        assert not page.errors, page.errors
    finally:
        call_id = await hang_up(page)
    record = await call_record(b.env, call_id)
    events = [(e["data"]["name"], e["data"]["event"]) for e in record["timeline"] if e["kind"] == "tool"]
    for name in ("collect_user_data", "display_booking_calendar"):
        assert [ev for n, ev in events if n == name] == ["tool_call", "tool_ack", "tool_result"]


async def test_upload_through_the_media_path_and_webhook(browsing: Browsing, tmp_path: Path) -> None:
    """The upload preset: the file goes to POST /media/upload on the worker, client_media_update reaches the
    agent's webhook handler (multipart with the file), the tool result carries the media id, and the
    webhook's result_text reaches the LLM."""
    b = browsing
    fake = b.env.fake
    page = await open_call(b)
    try:
        first = await turn(b, page, ("request_file_upload", {"reason": "To verify your identity"}),
                           then="Thanks, I have your file.")
        fake.add_text("Your document shows Jane Doe.")  # the reaction to the webhook's result, if it comes later
        picture = tmp_path / "id-card.png"
        picture.write_bytes(png(8, 8))
        chooser = page.locator('[data-talkwire-preset="vanira_upload"] [data-talkwire-file]')
        await chooser.wait_for(state="attached", timeout=60_000)
        await chooser.set_input_files(str(picture))
        result = await tool_result(b, first + 1)
        assert result["status"] == "success" and result["file_name"] == "id-card.png" and result["media_id"]
        for _ in range(1200):
            if any("Jane Doe" in str(m.get("content")) for r in fake.chat_requests[first + 1:]
                   for m in r.body["messages"] if m["role"] == "system"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the webhook's result_text never reached the LLM")
        sent = b.site.hook_requests[-1]
        assert sent["reason"] == "upload" and sent["data"] == png(8, 8) and sent["content_type"] == "image/png"
        assert sent["session_id"] == await page.evaluate("client.callId")
        assert not page.errors, page.errors
    finally:
        call_id = await hang_up(page)
    record = await call_record(b.env, call_id)
    # When the webhook's text rode on the tool round's own continuation, the spare "Jane Doe" reply was never
    # asked for: drop it, or the next test's first request gets it and every later scripted reply is one off.
    fake.script.clear()
    media = [e["data"] for e in record["timeline"] if e["kind"] == "client" and e["data"]["kind"] == "media"]
    assert media and media[0]["media_id"] == result["media_id"] and media[0]["route"] == "webhook"


async def test_navigate_cancelled_without_listener_then_spa(browsing: Browsing) -> None:
    b = browsing
    page = await open_call(b)
    try:
        first = await turn(b, page, ("navigate_user", {}))
        cancelled = await tool_result(b, first + 1)
        assert cancelled["status"] == "cancelled"
        assert any("No SPA listener handled vanira:navigate." in m for m in page.console)

        await page.evaluate("""window.addEventListener('vanira:navigate', (e) => {
            history.pushState({}, '', e.detail.path); e.detail.handled = true; })""")
        second = await turn(b, page, ("navigate_user", {}))
        assert await tool_result(b, second + 1) == {"status": "success", "navigated_to": "/pricing",
                                                   "target_url": "/pricing"}
        assert await page.evaluate("location.pathname") == "/pricing"
        await asyncio.sleep(0.5)  # the route change reaches the server as context
    finally:
        call_id = await hang_up(page)
    record = await call_record(b.env, call_id)
    contexts = [e["data"]["data"] for e in record["timeline"]
                if e["kind"] == "client" and e["data"]["kind"] == "context"]
    assert contexts[0]["user_action"] == "call_started_on_page" and contexts[0]["current_route"].startswith("/?")
    assert any(c.get("user_action") == "user_navigated" and c["current_route"] == "/pricing" for c in contexts)


async def test_click_type_scan_and_point(browsing: Browsing) -> None:
    b = browsing
    page = await open_call(b, "/checkout")
    try:
        first = await turn(b, page, ("click_button", {}))
        assert (await tool_result(b, first + 1))["status"] == "success"
        assert await page.evaluate("window.bought") == 1

        second = await turn(b, page, ("type_on_whiteboard", {"text_to_type": "F=ma"}))
        assert (await tool_result(b, second + 1))["status"] == "success"
        assert await page.input_value("#answer-input") == "x = F=ma"

        third = await turn(b, page, ("page_scan", {"prompt": "find the buy button"}))
        scan = await tool_result(b, third + 1)
        buy = next(e for e in scan["elements"] if e["element_id"] == "buy-button")
        fourth = await turn(b, page, ("point_at", {"element_id": buy["id"], "label": "Buy here"}))
        pointed = await tool_result(b, fourth + 1)
        assert pointed["status"] == "success" and pointed["element_id"] == buy["id"]
        assert await page.locator('[data-talkwire-cursor="guide"]').count() == 1
        assert not page.errors, page.errors
    finally:
        call_id = await hang_up(page)
    record = await call_record(b.env, call_id)
    results = [e["data"]["name"] for e in record["timeline"]
               if e["kind"] == "tool" and e["data"]["event"] == "tool_result"]
    assert results == ["click_button", "type_on_whiteboard", "page_scan", "point_at"]


async def test_session_continue_across_a_reload(browsing: Browsing) -> None:
    """sessionBehavior 'continue': the SDK stores the call id (vanira_latest_call_id), and after a reload the
    next call continues it on the server (continues_call_id, no second welcome, history kept)."""
    b = browsing
    fake = b.env.fake
    page = await open_call(b)
    try:
        await page.evaluate("client.disconnect()")
        await page.evaluate("window.start({sessionBehavior: 'continue'})")
        first_id = await page.evaluate("client.callId")
        assert await page.evaluate("sessionStorage.getItem('vanira_latest_call_id')") == first_id
        assert await page.evaluate("localStorage.getItem('vanira_latest_call_id')") == first_id
        await page.evaluate("client.sendContextUpdate({favourite_colour: 'teal'})")
        await asyncio.sleep(0.5)
        await page.reload()
        await page.wait_for_function("window.ready === true")
        await page.evaluate("window.start({sessionBehavior: 'continue'})")
        second_id = await page.evaluate("client.callId")
        assert second_id != first_id
        before = len(fake.chat_requests)
        fake.add_text("Teal, I remember.")
        await page.evaluate("client.sendActionTrigger('what_colour', {})")
        await wait_requests(fake, before + 1)
        assert any("teal" in str(m.get("content")) for m in fake.chat_requests[before].body["messages"])
    finally:
        await hang_up(page)
    record = await call_record(b.env, second_id)
    assert record["continues_call_id"] == first_id


async def test_demo_page_renders_presets(browsing: Browsing) -> None:
    """The demo page served by Talkwire, with the seeded Preset Demo Agent: PresetRenderer shows its form."""
    b = browsing
    env = b.env
    agents = (await env.api("GET", "/assistant"))["agents"]
    agent_id = next(a["id"] for a in agents if a["name"] == "Preset Demo Agent")
    await env.api("PATCH", f"/assistant/{agent_id}", json={
        **FAKE_STACK, "model": {"provider": "OPENAI", "model": env.fake.models[0]}, "welcome_message": ""})
    context = await b.browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto(f"{env.server.base_url}/?agent={agent_id}")
        await page.wait_for_function("!document.getElementById('talk').disabled")
        await page.click("#talk")
        await page.wait_for_function("window.talkwireClient && window.talkwireClient.connected")
        before = len(env.fake.chat_requests)
        env.fake.add_tool_calls(("collect_user_data", {"reason": "To send you the brochure"}))
        env.fake.add_text("Thanks, I will send it.")
        await page.evaluate("window.talkwireClient.sendActionTrigger('brochure', {})")
        modal = page.locator('[data-talkwire-preset="vanira_form"]')
        await modal.wait_for(timeout=60_000)
        await modal.locator('[data-talkwire-field="Name"]').fill("Ada")
        await modal.locator('[data-talkwire-field="Email"]').fill("ada@example.com")
        await modal.locator('[data-talkwire-field="Phone"]').fill("+14155550100")
        await modal.locator('[data-talkwire-action="submit"]').click()
        result = await tool_result(b, before + 1)
        assert result["status"] == "success" and result["values"]["Name"] == "Ada"
        assert "collect_user_data" in await page.inner_text("#tool-log")
        await page.click("#talk")  # hang up
        assert not errors, errors
    finally:
        await context.close()


async def test_sdk_interrupts_and_custom_tool_error(browsing: Browsing) -> None:
    """triggerInterrupt cuts the speaking agent and the action gets the next reply; a custom (non-preset)
    tool answered with sendToolError reaches the LLM as an error."""
    b = browsing
    fake = b.env.fake
    page = await open_call(b)
    try:
        await page.evaluate("""client.on('tool_call', (call) => {
            if (!call.preset_id) client.sendToolError(call.tool_call_id, 'no colour picker on this page'); })""")
        first = await turn(b, page, ("pick_colour", {}), then="Let me tell you a long story about colours. " * 4)
        error = await tool_result(b, first + 1)
        assert error["status"] == "error" and "no colour picker" in error["error"]
        await page.wait_for_function("client.agentState === 'speaking'", timeout=60_000)
        fake.add_text("Enterprise it is.")
        await page.evaluate("client.triggerInterrupt('plan_selected', {plan: 'Enterprise'})")
        await wait_requests(fake, first + 3)
        last_user = [m for m in fake.chat_requests[first + 2].body["messages"] if m["role"] == "user"][-1]
        assert "plan_selected" in last_user["content"] and "Enterprise" in last_user["content"]
        assert "clearAudio" in await page.evaluate("window.messages.map((m) => m.type)")
        await page.evaluate("client.interruptAudioOnly()")
    finally:
        call_id = await hang_up(page)
    record = await call_record(b.env, call_id)
    client_kinds = [e["data"]["kind"] for e in record["timeline"] if e["kind"] == "client"]
    assert client_kinds[-3:] == ["interrupt", "action_trigger", "interrupt"]
    interrupts = [e["data"] for e in record["timeline"]
                  if e["kind"] == "client" and e["data"]["kind"] == "interrupt"]
    assert interrupts[0] == {"kind": "interrupt", "audio_only": False, "cut": True}
    assert interrupts[-1]["audio_only"] is True
    assert any(e["kind"] == "tool" and e["data"]["name"] == "pick_colour" and e["data"]["event"] == "tool_error"
               for e in record["timeline"])


async def test_continue_with_an_unknown_stored_call_starts_fresh(browsing: Browsing) -> None:
    """A stored vanira_latest_call_id the server does not know (CALL_NOT_FOUND) is forgotten and a fresh
    session starts instead of failing."""
    b = browsing
    page = await open_call(b)
    try:
        await page.evaluate("client.disconnect()")
        stale = "9f1c1e4e-1111-4222-8333-444455556666"
        await page.evaluate(f"localStorage.setItem('vanira_latest_call_id', '{stale}'); "
                            "sessionStorage.removeItem('vanira_latest_call_id')")
        await page.evaluate("window.start({sessionBehavior: 'continue'})")
        call_id = await page.evaluate("client.callId")
        assert call_id != stale
        assert await page.evaluate("localStorage.getItem('vanira_latest_call_id')") == call_id
    finally:
        await hang_up(page)
    record = await call_record(b.env, call_id)
    assert record["continues_call_id"] is None
