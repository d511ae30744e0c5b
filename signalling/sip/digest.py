"""HTTP digest authentication for SIP (RFC 2617 / RFC 3261 §22): MD5, with `qop=auth` or without."""
from __future__ import annotations

import hashlib
import secrets

from signalling.sip.message import split_outside


class DigestError(ValueError):
    """A challenge we cannot answer (unknown scheme or algorithm, missing realm or nonce)."""


def parse_challenge(value: str) -> dict[str, str]:
    """`Digest realm="x", nonce="y", qop="auth,auth-int"` → lower-cased keys, unquoted values."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"unsupported authentication scheme {scheme!r}")
    params: dict[str, str] = {}
    for part in split_outside(rest, ","):
        key, eq, val = part.strip().partition("=")
        if not eq:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = val[1:-1]
        params[key.strip().lower()] = val
    if "nonce" not in params or "realm" not in params:
        raise DigestError("challenge without realm or nonce")
    algorithm = params.get("algorithm", "MD5").upper()
    if algorithm != "MD5":
        raise DigestError(f"unsupported digest algorithm {algorithm!r}")
    return params


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def digest_response(
    *, username: str, password: str, realm: str, nonce: str, method: str, uri: str,
    qop: str | None = None, nc: str = "00000001", cnonce: str | None = None,
) -> str:
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


def authorization(challenge: str, *, username: str, password: str, method: str, uri: str) -> str:
    """The Authorization / Proxy-Authorization header value answering `challenge`."""
    params = parse_challenge(challenge)
    qops = [q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()]
    qop = "auth" if "auth" in qops else None
    if qops and qop is None:
        raise DigestError(f"unsupported qop {params['qop']!r}")
    cnonce = secrets.token_hex(8) if qop else None
    nc = "00000001"
    response = digest_response(
        username=username, password=password, realm=params["realm"], nonce=params["nonce"],
        method=method, uri=uri, qop=qop, nc=nc, cnonce=cnonce,
    )
    fields = [
        f'username="{username}"', f'realm="{params["realm"]}"', f'nonce="{params["nonce"]}"',
        f'uri="{uri}"', f'response="{response}"', "algorithm=MD5",
    ]
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    if qop:
        fields += [f"qop={qop}", f"nc={nc}", f'cnonce="{cnonce}"']
    return "Digest " + ", ".join(fields)
