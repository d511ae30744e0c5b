"""The signature of requests between members: only a fresh request signed with the deployment's secret passes."""
from __future__ import annotations

from control_api.cluster.internal_auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers, verify


def test_a_signed_request_names_its_sender_and_nothing_else_passes() -> None:
    now = 1_800_000_000.0
    headers = signed_headers("s3cret", "m1", "POST", "/internal/calls/c1/end", b"{}", now=now)
    assert verify("s3cret", "POST", "/internal/calls/c1/end", b"{}", headers, now=now + 5) == "m1"
    lowered = {k.lower(): v for k, v in headers.items()}  # header names arrive in any case
    assert verify("s3cret", "post", "/internal/calls/c1/end", b"{}", lowered, now=now) == "m1"

    assert verify("other", "POST", "/internal/calls/c1/end", b"{}", headers, now=now) is None
    assert verify("s3cret", "POST", "/internal/calls/c2/end", b"{}", headers, now=now) is None
    assert verify("s3cret", "GET", "/internal/calls/c1/end", b"{}", headers, now=now) is None
    assert verify("s3cret", "POST", "/internal/calls/c1/end", b"{\"x\":1}", headers, now=now) is None
    assert verify("s3cret", "POST", "/internal/calls/c1/end", b"{}", headers, now=now + 31) is None  # stale
    assert verify("", "POST", "/internal/calls/c1/end", b"{}", headers, now=now) is None  # no secret: nothing
    unsigned = {k: v for k, v in headers.items() if k != SIGNATURE_HEADER}
    assert verify("s3cret", "POST", "/internal/calls/c1/end", b"{}", unsigned, now=now) is None
    forged = {**headers, TIMESTAMP_HEADER: str(int(now) + 1)}
    assert verify("s3cret", "POST", "/internal/calls/c1/end", b"{}", forged, now=now) is None
    for odd in ("\u00b2", "\u0663" * 10, "1e9", "-1", " 1"):  # "²" passes str.isdigit() but not int()
        bent = {**headers, TIMESTAMP_HEADER: odd}
        assert verify("s3cret", "POST", "/internal/calls/c1/end", b"{}", bent, now=now) is None
