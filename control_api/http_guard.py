"""Slow clients cannot hold the server's connections: time limits on reading a request.

uvicorn bounds the time between requests on a kept-alive connection (`timeout_keep_alive`) but not the time a
client takes to send one: a client that trickles its headers, or starts a body and never finishes it, held a
connection for as long as it liked (1,000 such clients took 1,000 file descriptors for 90 s). This protocol adds
two timers to uvicorn's httptools protocol:
- the request line and headers must arrive within `header_timeout` of the connection (or of the request's first
  byte on a kept-alive connection);
- while a body is being received, each piece must follow the last within `body_timeout`.
A client past either limit is disconnected (a request already handed to the app sees `http.disconnect`).
uvicorn's own `limit_concurrency` caps connections (503 beyond it); `docs/deployment.md` says what a reverse
proxy in front should add.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from media.log_limit import LimitedLog

log = logging.getLogger(__name__)
_slow = LimitedLog(log)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout = 10.0
    body_timeout = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._too_slow, what)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _too_slow(self, what: str) -> None:
        self._read_timer = None
        if not self.transport.is_closing():
            host = self.client[0] if self.client else "?"
            _slow.log(logging.INFO, (host, what), "closing a connection from %s: %s too slow", host, what)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, "request headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout, "request headers")

    def on_headers_complete(self) -> None:
        self._arm(self.body_timeout, "request body")
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._arm(self.body_timeout, "request body")
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()


def guarded_protocol(header_timeout: float, body_timeout: float) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=` with these limits."""
    return type("GuardedHttp", (GuardedHttpToolsProtocol,),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})
