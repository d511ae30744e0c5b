"""What the user agent tells routing about an inbound INVITE, and what routing answers.

The resolver (`async (InboundInvite) -> Decision`) sees the dialled and calling user parts, every header of the
INVITE (read-only: Diversion, P-Asserted-Identity, X- headers, ...) and where the INVITE came from; the accepted
leg keeps the same value as `leg.invite`, so the agent can read it too.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from signalling.sip.message import Request, SipParseError, canonical_name, parse_uri
from signalling.sip.transaction import Address


def user_of(uri: str) -> str:
    """The user part (the phone number) of a sip:/tel: URI; "" when there is none or it is unparseable."""
    try:
        return parse_uri(uri).user or ""
    except SipParseError:
        return ""


@dataclass(frozen=True)
class InboundInvite:
    """An inbound INVITE as routing sees it. `headers` are the request's, in order, with canonical names."""

    to_user: str
    from_user: str
    headers: tuple[tuple[str, str], ...]
    source: Address

    @classmethod
    def of(cls, req: Request, source: Address) -> InboundInvite:
        return cls(user_of(req.to.uri), user_of(req.from_.uri), tuple(req.headers.items()), source)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive, compact forms understood), or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        want = canonical_name(name).lower()
        return [value for key, value in self.headers if key.lower() == want]


@dataclass(frozen=True)
class Decision:
    """The resolver's answer for an inbound INVITE: status 200 accepts (with `context` for the agent)."""

    status: int = 200
    context: Any = None  # opaque to the user agent: handed on as `leg.context`

    @classmethod
    def accept(cls, context: Any = None) -> Decision:
        return cls(200, context)

    @classmethod
    def reject(cls, status: int = 404) -> Decision:
        return cls(status)


Resolver = Callable[[InboundInvite], Awaitable[Decision]]
