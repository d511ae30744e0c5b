"""The HTTP edge under hostile input: bodies that crashed the JSON reader, numbers that are not numbers, and
paths that reached the filesystem. Each is answered with the seed's error envelope, never a 500."""
from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"name": ' + "[" * 3000 + "]" * 3000 + "}", "VALIDATION_ERROR"),  # RecursionError in json.loads
        ('{"name": "a", "agent_prompt": "b", "extra": ' + "[" * 40 + "]" * 40 + "}", "VALIDATION_ERROR"),
        ('{"name": "a", "temperature": 1e400}', "VALIDATION_ERROR"),  # stored as Infinity before
        ('{"name": "a", "temperature": NaN}', "VALIDATION_ERROR"),
        ('{"name": "a" ', "BAD_REQUEST"),
    ],
)
async def test_hostile_bodies_are_refused_cleanly(client: httpx.AsyncClient, secret_headers: dict[str, str],
                                                  body: str, code: str) -> None:
    response = await client.post("/assistant", content=body,
                                 headers={**secret_headers, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("path", ["/sdk/%00", "/sdk/" + "a" * 5000, "/sdk/../app.py", "/sdk/%2e%2e/app.py",
                                  "/sdk/talkwire.js%00.png", "/sdk/"])
async def test_sdk_paths_never_reach_the_filesystem(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "NOT_FOUND"


async def test_sdk_files_are_still_served(client: httpx.AsyncClient) -> None:
    for name in ("talkwire.js", "presets.js"):
        response = await client.get(f"/sdk/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/javascript")
