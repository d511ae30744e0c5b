"""Media during a live web call: the upload endpoint, client_media_update, media handlers, live frames.

A live server (FAKE STT/TTS, OPENAI LLM on `openai_fake`) with an upload limit of 64 KB per file and a
per-call budget of 3 files / 128 KB, an aiortc caller in a real call, and a real local webhook server for the
`webhook` media handler.
"""
from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agent_runtime.client_events import ClientEvents, MediaFile
from agent_runtime.tools import netguard
from agent_runtime.tools.netguard import BlockedDestination
from control_api.media_store import sniff
from test_e2e_tools_protocol import Env, call_record, connect, tools_server, wait_requests

module_loop = pytest.mark.asyncio(loop_scope="module")  # the tests share the module's server and loop

LIMIT = 64 * 1024
CALL_FILES = 3
CALL_BYTES = 2 * LIMIT


def png(width: int = 4, height: int = 4) -> bytes:
    """A real (tiny, grey) PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@dataclass
class MediaWebhook:
    """A real HTTP server standing in for the customer's media webhook; records each multipart request."""

    answer: dict[str, Any] = field(default_factory=lambda: {"interrupt": True, "result_text": "Verified: Jane Doe."})
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: Request) -> JSONResponse:
        form = await request.form()
        media = form["media"]
        self.received.append({"headers": dict(request.headers), "reason": form.get("reason"),
                              "message": form.get("message"), "session_id": form.get("session_id"),
                              "filename": media.filename, "content_type": media.content_type,
                              "data": await media.read()})
        return JSONResponse(self.answer)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def media_env(tmp_path_factory: pytest.TempPathFactory,
                    migrated_sqlite_template: Path) -> AsyncIterator[tuple[Env, MediaWebhook]]:
    hook = MediaWebhook()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/hook", hook.handle, methods=["POST"])]),
                                           log_level="warning", lifespan="off"))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    hook.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    try:
        async with tools_server(tmp_path_factory.mktemp("media-e2e"), migrated_sqlite_template,
                                max_upload_bytes=LIMIT, max_uploads_per_call=CALL_FILES,
                                max_upload_bytes_per_call=CALL_BYTES) as env:
            await env.api("POST", f"/assistant/{env.agent_id}/media-handlers", json={
                "reason": "kyc_document", "route": "webhook", "webhook_url": hook.url,
                "webhook_headers": {"X-Hook-Secret": "s3cret"}, "inject_as": "system", "interrupt": False})
            await env.api("POST", f"/assistant/{env.agent_id}/media-handlers", json={
                "reason": "photo", "route": "vision", "inject_as": "user", "interrupt": True})
            yield env, hook
    finally:
        server.should_exit = True
        await task
        sock.close()


async def upload(env: Env, call_id: str | None, data: bytes, name: str, content_type: str,
                 reason: str = "kyc_document", message: str = "") -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as http:
        params = {"call_id": call_id} if call_id else {}
        return await http.post(f"{env.server.base_url}/media/upload", params=params,
                               files={"file": (name, data, content_type)},
                               data={"reason": reason, "message": message})


def sniffing_cases() -> list[tuple[bytes, str, str, str | None]]:
    return [
        (png(), "image/png", "a.png", "image/png"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "image/jpeg", "a.jpg", "image/jpeg"),
        (b"GIF89a" + b"\x00" * 10, "", "x", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "", "x", "image/webp"),
        (b"BM" + b"\x00" * 12 + struct.pack("<I", 40) + b"\x00" * 10, "", "x.bmp", "image/bmp"),
        (b"%PDF-1.7\n", "image/jpeg", "photo.jpg", "application/pdf"),  # the bytes decide, not the name
        (b"name,qty\nscarf,2\n", "text/csv", "cart.csv", "text/csv"),
        (b"hello", "text/plain", "note.txt", "text/plain"),
        (b"hello", "image/png", "fake.png", None),  # text claiming to be an image
        (b"MZ\x90\x00binary", "application/octet-stream", "x.exe", None),
        (b"a\x00b", "text/plain", "x.txt", None),
    ]


@pytest.mark.parametrize("data,declared,name,expected", sniffing_cases())
def test_sniff(data: bytes, declared: str, name: str, expected: str | None) -> None:
    assert sniff(data, declared, name) == expected


@module_loop
async def test_upload_rules(media_env: tuple[Env, MediaWebhook]) -> None:
    env, _hook = media_env
    response = await upload(env, None, png(), "a.png", "image/png")
    assert response.status_code == 404 and response.json()["error"]["code"] == "CALL_NOT_FOUND"
    caller = await connect(env)
    try:
        ok = await upload(env, caller.call_id, png(), "a.png", "image/png")
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["content_type"] == "image/png" and body["url"].endswith(body["media_id"])
        async with httpx.AsyncClient(timeout=60) as http:
            fetched = await http.get(body["url"])
        assert fetched.status_code == 200 and fetched.content == png()
        assert fetched.headers["content-type"] == "image/png"

        wrong = await upload(env, caller.call_id, b"not an image", "x.png", "image/png")
        assert wrong.status_code == 415 and wrong.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
        big = await upload(env, caller.call_id, b"%PDF-" + b"0" * LIMIT, "big.pdf", "application/pdf")
        assert big.status_code == 413 and big.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        async with httpx.AsyncClient(timeout=60) as http:
            no_reason = await http.post(f"{env.server.base_url}/media/upload", params={"call_id": caller.call_id},
                                        files={"file": ("a.png", png(), "image/png")})
            not_form = await http.post(f"{env.server.base_url}/media/upload", params={"call_id": caller.call_id},
                                       json={"file": "x"})
            preflight = await http.options(f"{env.server.base_url}/media/upload", headers={
                "Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
        assert no_reason.status_code == 400 and no_reason.json()["error"]["code"] == "VALIDATION_ERROR"
        assert not_form.status_code == 400
        assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    finally:
        await caller.close()
    await call_record(env, caller.call_id)
    ended = await upload(env, caller.call_id, png(), "a.png", "image/png")
    assert ended.status_code == 410 and ended.json()["error"]["code"] == "CALL_ENDED"


def refusals(metrics_text: str, reason: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(f'talkwire_refusals_total{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no talkwire_refusals_total for {reason}")


@module_loop
async def test_uploads_are_served_as_inert_downloads(media_env: tuple[Env, MediaWebhook]) -> None:
    """An HTML page declared text/plain is accepted as text, and served so no browser renders it: nosniff,
    an attachment with a safe name (RFC 6266 / 5987), and a CSP that allows nothing."""
    env, _hook = media_env
    page = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
    caller = await connect(env)
    try:
        body = (await upload(env, caller.call_id, page, 'x"; evil=1 <b>.html', "text/plain")).json()
        assert body["content_type"] == "text/plain"
        async with httpx.AsyncClient(timeout=60) as http:
            served = await http.get(body["url"])
    finally:
        await caller.close()
    assert served.status_code == 200 and served.content == page
    headers = served.headers
    assert headers["content-type"].startswith("text/plain")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"] == "default-src 'none'; sandbox"
    disposition = headers["content-disposition"]
    assert disposition.startswith("attachment; filename=\"")
    assert disposition.count('"') == 2 and "<" not in disposition and "evil=1" not in disposition.split(";")[2:3]
    assert "filename*=UTF-8''" in disposition
    print(f"served headers: {dict(headers)}")


@module_loop
async def test_upload_budget_per_call(media_env: tuple[Env, MediaWebhook]) -> None:
    """Past the call's budget (files or bytes in all) an upload is 413 UPLOAD_QUOTA_EXCEEDED and nothing is
    written; the call goes on, refusals are counted, and another call has its own budget."""
    env, _hook = media_env
    pdf = b"%PDF-" + b"0" * (LIMIT - 4096)
    async with httpx.AsyncClient(timeout=60) as http:
        before = refusals((await http.get(f"{env.server.base_url}/metrics")).text, "over_quota")
    caller = await connect(env)
    try:
        folder = env.server.settings.data_dir / "media" / caller.call_id
        assert (await upload(env, caller.call_id, pdf, "a.pdf", "application/pdf")).status_code == 200
        assert (await upload(env, caller.call_id, pdf, "b.pdf", "application/pdf")).status_code == 200
        over_bytes = await upload(env, caller.call_id, pdf, "c.pdf", "application/pdf")
        assert over_bytes.status_code == 413, over_bytes.text
        assert over_bytes.json()["error"]["code"] == "UPLOAD_QUOTA_EXCEEDED"
        assert (await upload(env, caller.call_id, png(), "c.png", "image/png")).status_code == 200
        over_count = await upload(env, caller.call_id, png(), "d.png", "image/png")
        assert over_count.status_code == 413 and over_count.json()["error"]["code"] == "UPLOAD_QUOTA_EXCEEDED"
        stored = sorted(p.name for p in folder.iterdir())
        assert len(stored) == 2 * CALL_FILES, stored  # each file and its metadata; nothing of the refused ones
        on_disk = sum(p.stat().st_size for p in folder.iterdir())
        print(f"call {caller.call_id}: {len(stored) // 2} files, {on_disk} bytes on disk after 5 uploads")
        assert on_disk <= CALL_BYTES + 4096
        second = await connect(env)
        try:
            assert (await upload(env, second.call_id, png(), "e.png", "image/png")).status_code == 200
        finally:
            await second.close()
    finally:
        await caller.close()
    async with httpx.AsyncClient(timeout=60) as http:
        after = refusals((await http.get(f"{env.server.base_url}/metrics")).text, "over_quota")
    assert after - before == 2


@module_loop
async def test_webhook_handler_reacts_once(media_env: tuple[Env, MediaWebhook]) -> None:
    """reason with a webhook handler: multipart (media, reason, message, session_id) with the configured
    headers reaches the webhook; its result_text reaches the LLM once, although the page notified twice."""
    env, hook = media_env
    fake = env.fake
    fake.add_text("Thanks, your document is verified.")
    caller = await connect(env)
    try:
        body = (await upload(env, caller.call_id, png(), "id-card.png", "image/png",
                             message="Does my name match?")).json()
        before = len(fake.chat_requests)
        update = {"type": "client_media_update", "media_id": body["media_id"], "url": body["url"],
                  "reason": "kyc_document", "message": "Does my name match?"}
        caller.send(update)
        caller.send(update)
        await wait_requests(fake, before + 1)
        await asyncio.sleep(1.0)
        assert len(fake.chat_requests) == before + 1  # one reaction
        sent = hook.received[-1]
        assert sent["reason"] == "kyc_document" and sent["message"] == "Does my name match?"
        assert sent["session_id"] == caller.call_id and sent["data"] == png()
        assert sent["headers"]["x-hook-secret"] == "s3cret" and sent["content_type"] == "image/png"
        messages = fake.chat_requests[before].body["messages"]
        assert any(m["role"] == "system" and "Verified: Jane Doe." in m["content"] for m in messages)
        await caller.wait_for_message(lambda m: m.get("type") == "transcription" and m.get("is_final")
                                      and "verified" in m.get("text", ""), timeout=60)
        # A media_id of no upload of this call is refused on the data channel.
        caller.send({**update, "media_id": "0" * 32})
        error = await caller.wait_for_message("error", timeout=30)
        assert error["code"] == "MEDIA_NOT_FOUND"
    finally:
        await caller.close()
    record = await call_record(env, caller.call_id)
    kinds = [e["data"]["kind"] for e in record["timeline"] if e["kind"] == "client"]
    assert "media" in kinds and "media_webhook" in kinds and "media_duplicate" in kinds


@module_loop
async def test_vision_handler_and_no_handler(media_env: tuple[Env, MediaWebhook]) -> None:
    env, _hook = media_env
    fake = env.fake
    fake.add_text("I see a grey square.")
    fake.add_text("Got your spreadsheet.")
    caller = await connect(env)
    try:
        body = (await upload(env, caller.call_id, png(), "p.png", "image/png", reason="photo")).json()
        before = len(fake.chat_requests)
        caller.send({"type": "client_media_update", "media_id": body["media_id"], "url": body["url"],
                     "reason": "photo", "message": "What is this?"})
        await wait_requests(fake, before + 1)
        last_user = [m for m in fake.chat_requests[before].body["messages"] if m["role"] == "user"][-1]
        parts = last_user["content"]
        assert parts[0]["type"] == "text" and "What is this?" in parts[0]["text"]
        assert parts[1] == {"type": "image_url", "image_url": {
            "url": "data:image/png;base64," + base64.b64encode(png()).decode()}}
        await caller.wait_for_message(lambda m: m.get("type") == "transcription" and m.get("is_final")
                                      and "grey" in m.get("text", ""), timeout=60)

        csv = (await upload(env, caller.call_id, b"item,qty\nscarf,2\n", "cart.csv", "text/csv",
                            reason="spreadsheet")).json()
        caller.send({"type": "client_media_update", "media_id": csv["media_id"], "url": csv["url"],
                     "reason": "spreadsheet", "message": ""})
        await wait_requests(fake, before + 2)
        told = [m for m in fake.chat_requests[before + 1].body["messages"] if m["role"] == "user"][-1]["content"]
        assert "cart.csv" in told and "text/csv" in told and "spreadsheet" in told
    finally:
        await caller.close()


@module_loop
async def test_live_frames_reach_the_next_turn(media_env: tuple[Env, MediaWebhook]) -> None:
    """client_media_frame keeps the latest frame per reason (at most one a second) for the next LLM request."""
    env, _hook = media_env
    fake = env.fake
    fake.add_text("I can see you.")
    first = base64.b64encode(png(2, 2)).decode()
    second = base64.b64encode(png(3, 3)).decode()
    caller = await connect(env)
    try:
        caller.send({"type": "client_media_frame", "reason": "camera", "image": first, "width": 2, "height": 2})
        caller.send({"type": "client_media_frame", "reason": "camera", "image": second, "width": 3, "height": 3})
        await asyncio.sleep(0.5)
        before = len(fake.chat_requests)
        caller.send({"type": "client_action_trigger", "action": "look_at_me"})
        await wait_requests(fake, before + 1)
        last = fake.chat_requests[before].body["messages"][-1]
        images = [p["image_url"]["url"] for p in last["content"] if p["type"] == "image_url"]
        assert images == [f"data:image/jpeg;base64,{first}"]  # the second came within the rate limit
    finally:
        await caller.close()


@module_loop
async def test_media_webhook_private_address_refused() -> None:
    """Without TALKWIRE_ALLOW_PRIVATE_WEBHOOKS a media webhook on a loopback/private address is refused."""
    events = ClientEvents(session_id="call-1", allow_private_webhooks=False)
    media = MediaFile("m1", "image/png", "a.png", len(png()), png())
    try:
        for url in ("http://127.0.0.1:9/hook", "http://10.0.0.5/hook", "http://169.254.169.254/latest"):
            with pytest.raises(BlockedDestination):
                await events._post_media({"webhook_url": url}, media, "kyc", "")
    finally:
        await events.aclose()


@module_loop
async def test_media_webhook_connects_to_the_checked_address(media_env: tuple[Env, MediaWebhook],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Test double for DNS: media.example "resolves" to the webhook's 127.0.0.1 and passes the check. The
    upload must go to that checked address (the name does not exist) with the name kept in Host."""
    _env, hook = media_env
    port = int(hook.url.rsplit(":", 1)[1].split("/", 1)[0])

    async def fake_check(host: str, p: int) -> list[ipaddress.IPv4Address]:
        assert (host, p) == ("media.example", port)
        return [ipaddress.IPv4Address("127.0.0.1")]

    monkeypatch.setattr(netguard, "checked_addresses", fake_check)
    events = ClientEvents(session_id="call-9", allow_private_webhooks=False)
    media = MediaFile("m9", "image/png", "b.png", len(png()), png())
    before = len(hook.received)
    try:
        response = await events._post_media({"webhook_url": f"http://media.example:{port}/hook",
                                              "webhook_headers": {"X-Hook-Secret": "s3cret"}}, media, "kyc", "")
    finally:
        await events.aclose()
    assert response.status_code == 200
    sent = hook.received[before]
    assert sent["headers"]["host"] == f"media.example:{port}" and sent["headers"]["x-hook-secret"] == "s3cret"
    assert sent["session_id"] == "call-9" and sent["filename"] == "b.png"
