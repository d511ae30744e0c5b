"""Slow clients against the real server (uvicorn on a 127.0.0.1 port): a client that trickles its headers or
never finishes its body is disconnected after the configured time, and nobody else notices."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx

from conftest import LiveServer
from control_api.settings import Settings


async def _closed_after(host: str, port: int, first: bytes, limit: float) -> float:
    """Send `first`, then nothing: seconds until the server closes the connection (fails past `limit`)."""
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    writer.write(first)
    await writer.drain()
    try:
        async with asyncio.timeout(limit):
            while await reader.read(4096):
                pass
    finally:
        writer.close()
    return time.monotonic() - started


async def test_trickling_headers_and_unfinished_bodies_are_cut_off(
        settings: Settings, live_server_factory: Callable[..., AbstractContextManager[LiveServer]]) -> None:
    settings = settings.model_copy(update={"http_header_timeout": 1.0, "http_body_timeout": 1.0})
    with live_server_factory(settings) as server:
        host, port = server.base_url.removeprefix("http://").split(":")
        slow = [
            b"GET /health HTTP/1.1\r\nHost: x\r\n",  # headers never end
            b"",  # connects and says nothing
            b"POST /assistant HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000"
            b"\r\n\r\n{\"name\": ",  # the body never ends
        ]
        tasks = [asyncio.create_task(_closed_after(host, int(port), first, 5)) for first in slow * 20]  # 60 at once
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            started = time.monotonic()
            assert (await http.get("/health")).status_code == 200  # others are served meanwhile
            fast = time.monotonic() - started
        waited = await asyncio.gather(*tasks)
    print(f"slow clients cut after {min(waited):.2f}-{max(waited):.2f} s; /health took {fast * 1000:.0f} ms")
    assert all(0.8 < w < 3.0 for w in waited)
    assert fast < 1.0
