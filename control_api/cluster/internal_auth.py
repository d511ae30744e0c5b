"""Requests between members (e.g. "end call X" forwarded to the member that runs it), signed with the
deployment's shared secret, TALKWIRE_CLUSTER_SECRET.

    headers = signed_headers(secret, member_id, "POST", "/internal/calls/X/end", body)   the sender
    sender = verify(secret, "POST", request_path, body, request_headers)                  the receiver: its id
                                                                                           or None (refuse 401)

The signature is HMAC-SHA256 over the method, the path (with its query), a timestamp, the sending member and
the body's SHA-256; a request older or newer than MAX_SKEW_SECONDS is refused, so a captured request is good
for 30 s at most (and the internal actions are idempotent: ending a call twice ends it once).
"""
from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Talkwire-Cluster-Signature"
TIMESTAMP_HEADER = "X-Talkwire-Cluster-Timestamp"
MEMBER_HEADER = "X-Talkwire-Cluster-Member"
MAX_SKEW_SECONDS = 30


def _signature(secret: str, method: str, path: str, timestamp: str, member_id: str, body: bytes) -> str:
    message = "\n".join((method.upper(), path, timestamp, member_id, hashlib.sha256(body).hexdigest()))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_headers(secret: str, member_id: str, method: str, path: str, body: bytes = b"", *,
                   now: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp, MEMBER_HEADER: member_id,
            SIGNATURE_HEADER: _signature(secret, method, path, timestamp, member_id, body)}


def verify(secret: str, method: str, path: str, body: bytes, headers: Mapping[str, str], *,
           now: float | None = None) -> str | None:
    """The sending member's id when the request is signed with `secret` and fresh; None otherwise."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    member_id = lowered.get(MEMBER_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not (secret and timestamp.isascii() and timestamp.isdigit() and member_id and given):
        return None
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_SKEW_SECONDS:
        return None
    expected = _signature(secret, method, path, timestamp, member_id, body)
    return member_id if hmac.compare_digest(expected, given) else None
