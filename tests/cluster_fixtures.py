"""Fixtures for the many-workers tests: a real Redis, a fresh key namespace per test.

`redis_url` skips the test unless TALKWIRE_TEST_REDIS_URL is set (`eval "$(scripts/start_redis.sh)"` sets it,
as scripts/test.sh does). `cluster_keys` is a namespace of the test's own, whose keys are deleted afterwards, so
tests share one server without seeing each other. conftest.py imports them, so every test module has them.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from control_api.cluster.keys import Keyspace

REDIS_URL = os.environ.get("TALKWIRE_TEST_REDIS_URL")


@pytest.fixture
def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("TALKWIRE_TEST_REDIS_URL is not set (eval \"$(scripts/start_redis.sh)\" to run these)")
    return REDIS_URL


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def cluster_keys(redis_client: Redis) -> AsyncIterator[Keyspace]:
    keys = Keyspace("twtest-" + secrets.token_hex(4))
    try:
        yield keys
    finally:
        stale = [key async for key in redis_client.scan_iter(match=f"{keys.namespace}:*", count=1000)]
        if stale:
            await redis_client.delete(*stale)
