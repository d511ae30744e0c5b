"""A request about a call that another member runs goes to that member, with the caller's credentials, marked
as forwarded (never forwarded again), and signed when the server itself is the sender."""
from __future__ import annotations

import httpx

from control_api.cluster.forwarding import FORWARDED_HEADER, forward, was_forwarded
from control_api.cluster.internal_auth import verify
from control_api.cluster.member import MemberState

OWNER = MemberState(id="m2", url="https://talk.example.com/m/2", sip=None, capacity=0,
                    direct_url="http://10.0.0.5:8102")


async def test_the_request_reaches_the_owner_as_it_came() -> None:
    seen: list[httpx.Request] = []

    def owner(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True, "call_id": "c1", "status": "completed"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(owner)) as http:
        answer = await forward(http, OWNER, "m1", "POST", "/calls/c1/end",
                               headers={"X-API-Key": "sk_live_x", "Cookie": "no", "Content-Type": "application/json"},
                               body=b"{}")
    assert answer.status_code == 200 and answer.json()["status"] == "completed"
    [request] = seen
    assert str(request.url) == "http://10.0.0.5:8102/calls/c1/end" and request.method == "POST"  # not via nginx
    assert request.headers["x-api-key"] == "sk_live_x" and "cookie" not in request.headers
    assert request.headers[FORWARDED_HEADER] == "m1" and was_forwarded(dict(request.headers))
    assert request.content == b"{}"
    assert not was_forwarded({"X-API-Key": "sk_live_x"})


async def test_without_a_direct_url_the_public_one_is_used() -> None:
    seen: list[str] = []

    def owner(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200)

    public_only = MemberState(id="m3", url="https://talk.example.com/m/3", sip=None, capacity=0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(owner)) as http:
        await forward(http, public_only, "m1", "GET", "/calls/c1", headers={})
    assert seen == ["https://talk.example.com/m/3/calls/c1"]


async def test_a_request_of_the_server_itself_is_signed() -> None:
    seen: list[httpx.Request] = []

    def owner(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(owner)) as http:
        await forward(http, OWNER, "m1", "POST", "/internal/calls/c1/end", headers={}, secret="s3cret")
    [request] = seen
    assert verify("s3cret", "POST", "/internal/calls/c1/end", b"", dict(request.headers)) == "m1"
