"""Pooled HTTP clients for the remote providers, one per event loop.

Every call's provider instance shares its loop's client, so a remote endpoint's TLS connection is reused
from turn to turn instead of being set up again for each reply, sentence or utterance.
"""
from __future__ import annotations

import asyncio
import weakref

import httpx

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def client() -> httpx.AsyncClient:
    """This loop's pooled client (created on first use)."""
    loop = asyncio.get_running_loop()
    pooled = _clients.get(loop)
    if pooled is None or pooled.is_closed:
        pooled = _clients[loop] = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=20))
    return pooled


async def aclose_clients() -> None:
    """Close this loop's pooled client (server shutdown)."""
    pooled = _clients.pop(asyncio.get_running_loop(), None)
    if pooled is not None:
        await pooled.aclose()
