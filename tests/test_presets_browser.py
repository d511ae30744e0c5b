"""The real PresetRenderer (control_api/static/sdk/presets.js) in headless Chromium, on a static test page.

The page holds a test double for the Talkwire client (records sendToolResult / sendToolError /
uploadMedia / sendEvent, emits tool_call and message events); everything else is the real module
and real DOM. The integration step drives it through the real client and server.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.routing import Route

pytestmark = pytest.mark.browser

SDK = Path(__file__).resolve().parents[1] / "control_api" / "static" / "sdk" / "presets.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

PAGE = """<!doctype html><html><head><title>Preset test</title></head><body>
<h1>Shop</h1>
<nav><a id="pricing-link" href="/pricing">Pricing</a></nav>
<main id="view"><button id="buy-button" onclick="window.bought = (window.bought||0)+1">Buy now</button>
<input id="answer-input" value="x =">
<select id="cabin"><option value="economy">Economy</option><option value="business">Business</option></select>
<input id="departure-date" type="text"></main>
<script type="module">
import { PresetRenderer } from "/sdk/presets.js";
class FakeClient {  // test double: records what the renderer sends
  constructor() { this.listeners = {}; this.sent = []; this.events = []; this.uploads = []; }
  on(event, fn) { (this.listeners[event] ||= []).push(fn); return this; }
  off(event, fn) { this.listeners[event] = (this.listeners[event] || []).filter((f) => f !== fn); }
  emit(event, payload) { for (const fn of this.listeners[event] || []) fn(payload); }
  sendToolResult(id, result) { this.sent.push({ kind: "result", id, result }); }
  sendToolError(id, message) { this.sent.push({ kind: "error", id, message }); }
  sendEvent(type, data = {}) { this.events.push({ ...data, type }); }
  async uploadMedia(file, reason, message) {
    this.uploads.push({ name: file.name, type: file.type, size: file.size, reason, message });
    return { media_id: "m_" + this.uploads.length, url: "/media/m_" + this.uploads.length };
  }
}
window.client = new FakeClient();
window.renderer = new PresetRenderer(window.client, { navigateWaitMs: 200, elementWaitMs: 1000 });
window.call = (id, preset_id, args, mode = "blocking") => window.client.emit("tool_call",
  { type: "client_tool_call", tool_call_id: id, name: id, arguments: { preset_id, ...args }, execution_mode: mode, preset_id });
window.ready = true;
</script></body></html>"""


def _app() -> Starlette:
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async def sdk(request: Request) -> FileResponse:
        return FileResponse(SDK, media_type="text/javascript")

    async def slots(request: Request) -> JSONResponse:
        date = request.query_params.get("date", "")
        return JSONResponse({"slots": [f"{date} 09:00", f"{date} 14:30"], "tz": request.query_params.get("tz")})

    return Starlette(routes=[Route("/", page), Route("/checkout", page), Route("/sdk/presets.js", sdk),
                             Route("/slots", slots)])


@pytest.fixture(scope="module")
def page_server() -> Any:
    """The static test site on a free 127.0.0.1 port, in a thread with its own loop."""
    import threading

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(_app(), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    for _ in range(1000):
        if server.started:
            break
        thread.join(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (launching costs seconds); a fresh page per test."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, page_server: str) -> Iterator[Any]:
    context = browser.new_context(permissions=["camera"])
    tab = context.new_page()
    tab.console_messages = []
    tab.on("console", lambda m: tab.console_messages.append(m.text))
    tab.goto(page_server + "/")
    tab.wait_for_function("window.ready === true", timeout=10_000)
    yield tab
    context.close()


def sent(page: Any, tool_call_id: str) -> dict[str, Any]:
    handle = page.wait_for_function(
        "(id) => window.client.sent.find((s) => s.id === id)", arg=tool_call_id, timeout=15_000)
    return handle.json_value()


def test_form_submit_and_cancel_from_server(page):
    page.evaluate("call('f1', 'vanira_form', {title: 'Your details', fields: 'Name, Email', "
                        "agent_arguments: {reason: 'To look up your order'}})")
    modal = page.locator('[data-talkwire-preset="vanira_form"]')
    modal.wait_for()
    assert modal.locator("[data-talkwire-description]").inner_text() == "To look up your order"
    modal.locator('[data-talkwire-field="Name"]').fill("Teja")
    modal.locator('[data-talkwire-field="Email"]').fill("teja@example.com")
    modal.locator('[data-talkwire-action="submit"]').click()
    got = sent(page, "f1")
    assert got == {"kind": "result", "id": "f1",
                   "result": {"status": "success", "values": {"Name": "Teja", "Email": "teja@example.com"}}}
    assert modal.count() == 0

    page.evaluate("call('f2', 'vanira_form', {fields: 'Phone'})")
    page.locator('[data-talkwire-preset="vanira_form"]').wait_for()
    page.evaluate("client.emit('message', {type: 'client_tool_cancel', tool_call_id: 'f2', reason: 'barge_in'})")
    got = sent(page, "f2")
    assert got["result"] == {"status": "interrupted", "reason": "barge_in"}
    assert page.locator("[data-talkwire-modal]").count() == 0

    page.evaluate("call('f3', 'vanira_form', {fields: 'Phone'})")
    page.locator('[data-talkwire-preset="vanira_form"]').wait_for()
    page.evaluate("client.emit('disconnected')")  # hang-up: the UI closes, nothing is sent on a dead channel
    page.locator("[data-talkwire-modal]").wait_for(state="detached")
    assert page.evaluate("client.sent.map((s) => s.id)") == ["f1", "f2"]


def test_navigate_with_and_without_listener(page):
    page.evaluate("call('n1', 'vanira_navigate', {target_url: '/pricing'})")
    got = sent(page, "n1")
    assert got["result"]["status"] == "cancelled"
    assert any("No SPA listener handled vanira:navigate." in m for m in page.console_messages)

    page.evaluate("""window.addEventListener('vanira:navigate', (e) => {
        history.pushState({}, '', e.detail.path); e.detail.handled = true; })""")
    page.evaluate("call('n2', 'vanira_navigate', {target_url: '/pricing#faq'})")
    got = sent(page, "n2")
    assert got["result"] == {"status": "success", "navigated_to": "/pricing#faq", "target_url": "/pricing#faq"}
    assert page.evaluate("location.pathname + location.hash") == "/pricing#faq"

    page.evaluate("call('n3', 'vanira_navigate', {target_url: 'https://docs.example.invalid/start'})")
    got = sent(page, "n3")["result"]
    assert got["status"] == "success" and got["target_url"] == "https://docs.example.invalid/start"
    assert got["opened_in_new_tab"] or got["link_shown"]  # a new tab, or a link when popups are blocked
    assert page.evaluate("location.pathname") == "/pricing"  # this page stays


def test_click_with_route_type_select_and_date(page):
    # On /pricing the button is gone; the route rule navigates to /checkout, where the SPA renders it.
    page.evaluate("""(() => {
        const view = document.getElementById('view'); window.saved = view.innerHTML; view.innerHTML = '';
        history.pushState({}, '', '/pricing');
        window.addEventListener('talkwire:navigate', (e) => {
          history.pushState({}, '', e.detail.path); e.detail.handled = true;
          setTimeout(() => { view.innerHTML = window.saved; }, 150);
        });
    })()""")
    page.evaluate("call('c1', 'vanira_click_element', {element_id: 'buy-button', route: '/checkout'})")
    got = sent(page, "c1")
    assert got["result"]["status"] == "success", got
    assert page.evaluate("location.pathname") == "/checkout"
    assert page.evaluate("window.bought") == 1

    page.evaluate("call('t1', 'vanira_type_text', {css_selector: '#answer-input', element_id: '', "
                        "typing_mode: 'append', delay_ms: 5, text_to_type: 'F=ma'})")
    assert (sent(page, "t1"))["result"]["status"] == "success"
    assert page.input_value("#answer-input") == "x = F=ma"

    page.evaluate("call('s1', 'vanira_select_option', {element_id: 'cabin', allowed_options: "
                        "['economy', 'business'], agent_arguments: {option_label: 'Business'}})")
    assert (sent(page, "s1"))["result"] == {"status": "success", "value": "business", "label": "Business"}
    page.evaluate("call('d1', 'vanira_set_date', {element_id: 'departure-date', text_format: 'DD/MM/YYYY', "
                        "date: '2026-06-15'})")
    assert (sent(page, "d1"))["result"]["value"] == "15/06/2026"
    assert page.input_value("#departure-date") == "15/06/2026"

    page.evaluate("call('e1', 'vanira_erase_text', {element_id: '#answer-input', delay_ms: 0, "
                  "agent_arguments: {mode: 'words', num_words: 1}})")
    assert (sent(page, "e1"))["result"]["remaining"] == "x ="
    assert page.input_value("#answer-input") == "x ="
    page.evaluate("call('sc', 'vanira_screen_click', {css_selector: '#buy-button', perform_click: true})")
    assert (sent(page, "sc"))["result"]["clicked"]["css_selector"] == "#buy-button"
    assert page.evaluate("window.bought") == 2

    page.evaluate("call('x1', 'vanira_click_element', {element_id: 'nope'})")
    got = sent(page, "x1")
    assert got["kind"] == "error" and "not found" in got["message"]


def test_page_scan_then_point_at_and_outline(page):
    page.evaluate("call('p1', 'vanira_page_scan', {max_elements: 64})")
    scan = (sent(page, "p1"))["result"]
    buy = next(e for e in scan["elements"] if e["element_id"] == "buy-button")
    assert buy["text"] == "Buy now" and 0 < buy["center_x"] < 1 and buy["css_selector"] == "#buy-button"
    page.evaluate(f"call('p2', 'vanira_point_at', {{agent_arguments: {{element_id: '{buy['id']}', label: 'here'}}}})")
    assert (sent(page, "p2"))["result"]["element_id"] == buy["id"]
    assert page.locator('[data-talkwire-cursor="guide"]').count() == 1
    assert page.locator('[data-talkwire-outline="point"]').count() == 1
    page.evaluate(f"call('p3', 'vanira_outline_targets', {{targets: '{json.dumps([buy['id'], 'e999'])}'}})")
    assert (sent(page, "p3"))["result"] == {"status": "success", "outlined": [buy["id"]], "missing": ["e999"]}
    page.evaluate("call('ink', 'vanira_screen_ink', {color: '#f97316', agent_arguments: "
                  "{points: [[0.1, 0.1], [0.5, 0.2]], css_selector: '#buy-button', close: false}})")
    assert sent(page, "ink")["result"] == {"status": "success", "strokes": 2, "interactive": False}
    assert page.locator("svg[data-talkwire-ink] path").count() == 2
    page.evaluate("call('ico', 'vanira_clear_screen_overlay', {})")
    sent(page, "ico")
    assert page.locator("svg[data-talkwire-ink]").count() == 0
    page.evaluate("call('p4', 'vanira_clear_guide', {})")
    sent(page, "p4")
    assert page.locator("[data-talkwire-cursor], [data-talkwire-outline]").count() == 0


def test_upload_calendar_and_screenshot(page, tmp_path):
    page.evaluate("call('u1', 'vanira_upload', {title: 'Upload', reason: 'kyc', accept: 'text/plain', "
                        "agent_arguments: {reason: 'To verify your identity'}})")
    file = tmp_path / "id.txt"
    file.write_text("Jane Doe")
    page.locator('[data-talkwire-preset="vanira_upload"] [data-talkwire-file]').set_input_files(str(file))
    got = sent(page, "u1")
    assert got["result"]["media_id"] == "m_1" and got["result"]["file_name"] == "id.txt"
    uploads = page.evaluate("client.uploads")
    assert uploads[0]["reason"] == "kyc" and uploads[0]["message"] == "To verify your identity"

    page.evaluate("call('k1', 'vanira_calendar', {timezone: 'UTC', "
                        "slots_api_url: location.origin + '/slots?date={{date}}&tz={{timezone}}'})")
    slot = page.locator("[data-talkwire-slot]").nth(1)
    slot.wait_for()
    slot.click()
    page.locator('[data-talkwire-preset="vanira_calendar"] [data-talkwire-action="confirm"]').click()
    result = (sent(page, "k1"))["result"]
    assert result["status"] == "success" and result["time"].endswith("14:30") and result["timezone"] == "UTC"

    page.evaluate("call('cl', 'vanira_clip_region', {reason: 'page_clip', min_region_px: 24, "
                  "agent_arguments: {prompt: 'What is this?'}})")
    page.locator("[data-talkwire-clip]").wait_for()
    page.mouse.move(4, 4)
    page.mouse.down()
    page.mouse.move(300, 130, steps=5)
    page.mouse.up()
    clip = sent(page, "cl")["result"]
    assert clip["status"] == "success" and clip["region"]["width"] == 296 and clip["prompt"] == "What is this?"
    assert "Shop" in clip["text"] and "Buy now" in clip["text"]
    assert clip.get("media_id") or clip.get("note")
    assert page.locator("[data-talkwire-clip]").count() == 0

    page.evaluate("call('ts', 'vanira_tab_screenshot', {max_width: 640, max_elements: 10})")
    result = (sent(page, "ts"))["result"]
    assert result["status"] == "success" and len(result["elements"]) <= 10
    assert result.get("media_id") or result.get("note")  # an image, or the reason there is none
    if result.get("media_id"):
        shot = (page.evaluate("client.uploads"))[-1]
        assert shot["type"] == "image/jpeg" and shot["size"] > 0 and shot["reason"] == "tab_screenshot"


def test_camera_capture_and_live_vision_with_a_fake_camera(page):
    page.evaluate("call('cam', 'vanira_camera', {reason: 'camera_capture', facing_mode: 'user'}, 'fire_and_forget')")
    capture = page.locator('[data-talkwire-preset="vanira_camera"] [data-talkwire-action="capture"]')
    capture.wait_for()
    page.evaluate("call('ps', 'vanira_page_scan', {})")  # the open camera (fire_and_forget) blocks nothing
    assert sent(page, "ps")["result"]["status"] == "success"
    page.wait_for_function("document.querySelector('[data-talkwire-camera]').videoWidth > 0", timeout=10_000)
    capture.click()
    page.wait_for_function("client.uploads.length === 1", timeout=10_000)
    upload = page.evaluate("client.uploads[0]")
    assert upload["name"] == "camera.jpg" and upload["type"] == "image/jpeg" and upload["size"] > 1000
    assert upload["reason"] == "camera_capture"
    assert page.evaluate("client.sent.length") == 1  # only page_scan's: fire_and_forget gets no tool result

    page.evaluate("call('lv', 'vanira_live_vision', {target_fps: 4, max_width: 320, reason: 'damage'}, 'fire_and_forget')")
    page.wait_for_function("client.events.filter((e) => e.type === 'client_media_frame').length >= 2", timeout=15_000)
    frame = page.evaluate("client.events.find((e) => e.type === 'client_media_frame')")
    assert frame["reason"] == "damage" and frame["width"] <= 320 and frame["image"].startswith("/9j/")  # JPEG
    page.evaluate("call('lc', 'vanira_close_live_camera', {})")
    assert sent(page, "lc")["result"] == {"status": "success", "was_streaming": True}
    kinds = page.evaluate("client.events.map((e) => e.type)")
    assert kinds[0] == "client_live_camera_started" and kinds[-1] == "client_live_camera_stopped"
    assert page.locator("[data-talkwire-preview]").count() == 0
