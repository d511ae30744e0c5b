"""One member of a deployment as the others see it: what its heartbeat publishes in Redis."""
from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field


def generated_member_id() -> str:
    """A member name unique to this start: the host name and a random suffix (TALKWIRE_MEMBER_ID overrides)."""
    host = socket.gethostname().split(".")[0] or "member"
    return f"{host}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class MemberState:
    id: str
    url: str  # TALKWIRE_PUBLIC_URL: the base of the worker_url of calls placed on it
    sip: str | None  # host:port its SIP user agent listens on (what Kamailio's dispatcher list names)
    capacity: int  # TALKWIRE_MAX_CALLS; 0: no limit
    draining: bool = False
    calls_by_leg: Mapping[str, int] = field(default_factory=dict)  # e.g. {"web": 3, "sip": 12}
    started_at: float = 0.0  # unix seconds
    direct_url: str | None = None  # how other members reach it without the proxy (TALKWIRE_MEMBER_URL)
    reserved: int = 0  # placements on it not yet started (read from Redis, not published by the member)

    @property
    def calls(self) -> int:
        return sum(self.calls_by_leg.values())

    def fields(self) -> dict[str, str]:
        """The Redis hash of this state (what the member publishes)."""
        return {
            "id": self.id, "url": self.url, "sip": self.sip or "", "capacity": str(self.capacity),
            "draining": "1" if self.draining else "0", "calls": str(self.calls),
            "legs": json.dumps(dict(self.calls_by_leg), sort_keys=True), "started_at": repr(self.started_at),
            "direct": self.direct_url or "",
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str], *, reserved: int = 0) -> MemberState | None:
        """The state read back from its hash; None for a hash that is gone (an expired member) or unreadable."""
        try:
            legs = json.loads(fields["legs"])
            return cls(id=fields["id"], url=fields["url"], sip=fields["sip"] or None,
                       capacity=int(fields["capacity"]), draining=fields["draining"] == "1",
                       calls_by_leg={str(k): int(v) for k, v in legs.items()},
                       started_at=float(fields["started_at"]), direct_url=fields.get("direct") or None,
                       reserved=reserved)
        except (KeyError, ValueError, TypeError, AttributeError):
            return None
