"""SIP dialog state (RFC 3261 §12): the identifiers and routing of one call's in-dialog requests."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from signalling.sip.message import NameAddr, SipUri, parse_name_addr, parse_uri


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(10)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"


@dataclass
class Dialog:
    call_id: str
    local: NameAddr  # our From (UAC) / To (UAS), with our tag
    remote: NameAddr  # their address; its tag is set once known
    remote_target: str  # Contact of the peer: Request-URI of in-dialog requests
    local_cseq: int
    remote_cseq: int | None = None
    route_set: list[str] = field(default_factory=list)
    peer: tuple[str, int] | None = None  # where the dialog-creating message came from (UAS side)
    confirmed: bool = False

    @property
    def local_tag(self) -> str | None:
        return self.local.tag

    @property
    def remote_tag(self) -> str | None:
        return self.remote.tag

    def next_cseq(self) -> int:
        self.local_cseq += 1
        return self.local_cseq

    def next_hop(self) -> SipUri:
        """Where in-dialog requests go: the first route (loose routing) or the remote target."""
        if self.route_set:
            return parse_uri(parse_name_addr(self.route_set[0]).uri)
        return parse_uri(self.remote_target)

    def matches(self, from_tag: str | None, to_tag: str | None) -> bool:
        """Does an incoming in-dialog request (their From tag, our To tag) belong to this dialog?"""
        return to_tag == self.local_tag and (self.remote_tag is None or from_tag == self.remote_tag)

