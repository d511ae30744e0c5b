"""SIP trunks: where outbound calls go and which digest credentials they use."""
from __future__ import annotations

from dataclasses import dataclass

from signalling.sip.dns import is_ip
from signalling.sip.message import SipParseError, is_digits, parse_uri


class TrunkError(ValueError):
    """A trunk URI we cannot use."""


@dataclass(frozen=True)
class Trunk:
    host: str
    port: int = 5060
    username: str | None = None
    password: str | None = None
    default_caller_id: str | None = None  # the user part of the trunk URI, when it looks like a number
    register: bool = False  # keep our Contact registered with this trunk (inbound calls arrive on the binding)
    locate: bool = False  # a host name without a port: found by NAPTR/SRV (RFC 3263), `port` unused
    transport: str = "udp"  # "udp", "tcp" or "tls" (signalling/sip/stream_transport.py)
    srtp: bool = False  # offer SRTP with SDES keys (RTP/SAVP + a=crypto, signalling/sip/srtp.py)

    @property
    def dns_port(self) -> int:
        """The port to resolve with: 0 asks for the SRV lookup."""
        return 0 if self.locate else self.port

    @property
    def hostport(self) -> str:
        return self.host if self.locate else f"{self.host}:{self.port}"

    def uri_for(self, number: str) -> str:
        """Request-URI / Refer-To for a number at this trunk: sip:<number>@host:port."""
        return f"sip:{number}@{self.hostport}"

    @classmethod
    def parse(cls, text: str) -> Trunk:
        """`sip:alice:secret@127.0.0.1:5070;transport=tcp;register=yes;srtp=sdes` (user, password, port
        optional)."""
        try:
            uri = parse_uri(text)
        except SipParseError as exc:
            raise TrunkError(f"bad SIP trunk URI {text!r}: {exc}") from exc
        if uri.scheme != "sip":
            raise TrunkError(f"SIP trunk must be a sip: URI, got {text!r}")
        transport = (uri.params.get("transport") or "udp").lower()
        if transport not in ("udp", "tcp", "tls"):
            raise TrunkError(f"unknown SIP transport {transport!r} (udp, tcp or tls)")
        caller = uri.user if uri.user and is_digits(uri.user.lstrip("+")) else None
        register = (uri.params.get("register") or "no").lower() in ("yes", "true", "1")
        locate = uri.port is None and not is_ip(uri.host)
        port = uri.port or (5061 if transport == "tls" else 5060)
        srtp = (uri.params.get("srtp") or "no").lower() in ("sdes", "yes", "true", "1")
        return cls(uri.host, port, uri.user, uri.password, caller, register, locate, transport, srtp)


def parse_hostport(text: str, default_port: int = 5060) -> tuple[str, int]:
    """`127.0.0.1:5060` / `0.0.0.0` / `[::1]:5060` → (host, port), e.g. for TALKWIRE_SIP_BIND; port 0
    (bind any free port) is allowed."""
    text = text.strip()
    if text.endswith(":0") and not text.endswith("::0"):
        return parse_hostport(text[:-2], default_port)[0], 0
    try:
        uri = parse_uri("sip:" + text)
    except SipParseError as exc:
        raise TrunkError(f"bad host:port {text!r}") from exc
    return uri.host, uri.port if uri.port is not None else default_port
