"""Acting on a live call that another member runs: the request goes on to that member.

    POST /calls/{id}/end on member A, the call runs on member B (CallDirectory.owner):
      A ── forward(http, owner=B, request as it came) ──► B's direct URL (TALKWIRE_MEMBER_URL; else its public
           URL), same method, path and body, the caller's
           own credentials, `X-Talkwire-Forwarded-By: A` ──► B answers; A returns B's answer as it is

The caller's own key authorises the request on B exactly as on A (both read the same database), so nothing new
is trusted. A request carrying `X-Talkwire-Forwarded-By` is never forwarded again (no loops when the directory
is stale). Actions the server starts itself (no caller, no key) are signed with TALKWIRE_CLUSTER_SECRET instead
(internal_auth.py).
"""
from __future__ import annotations

from collections.abc import Mapping

import httpx

from control_api.cluster.internal_auth import signed_headers
from control_api.cluster.member import MemberState

FORWARDED_HEADER = "X-Talkwire-Forwarded-By"
PASSED_HEADERS = ("x-api-key", "authorization", "content-type", "accept")  # what a forwarded request keeps
FORWARD_TIMEOUT = 15.0  # seconds; above the owner's own wait for a call to end (10 s)


def was_forwarded(headers: Mapping[str, str]) -> bool:
    return any(name.lower() == FORWARDED_HEADER.lower() for name in headers)


async def forward(http: httpx.AsyncClient, owner: MemberState, sender_id: str, method: str, path: str, *,
                  headers: Mapping[str, str], body: bytes = b"", secret: str | None = None) -> httpx.Response:
    """Send the request to `owner` (path with its query, as received) and return its answer. With `secret`, the
    request is also signed as coming from `sender_id` (for the internal routes)."""
    passed = {name: value for name, value in headers.items() if name.lower() in PASSED_HEADERS}
    passed[FORWARDED_HEADER] = sender_id
    if secret:
        passed.update(signed_headers(secret, sender_id, method, path, body))
    base = owner.direct_url or owner.url
    return await http.request(method, base + path, headers=passed, content=body, timeout=FORWARD_TIMEOUT)
