"""SDP offer/answer for one audio stream (RFC 4566, RFC 3264): PCMU, PCMA and telephone-event at 20 ms.

What the far end names is checked once, here, so the media path never has to: the connection address must be an
IPv4 literal (a host name would make every RTP send resolve it, on the event loop), not multicast or broadcast,
and ports must be 1-65535. Anything else is an `SdpError` (488 for an offer).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from media.g711 import PCMA, PCMU

TELEPHONE_EVENT_PT = 101
_STATIC = {PCMU: "PCMU", PCMA: "PCMA"}
_SUPPORTED = {"PCMU": PCMU, "PCMA": PCMA}
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


class SdpError(ValueError):
    """An SDP body we cannot use (unparseable, no audio stream, no common codec)."""


@dataclass
class MediaDescription:
    media: str
    port: int
    proto: str
    formats: list[int]
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)
    direction: str | None = None
    connection: str | None = None
    rtcp_port: int | None = None


@dataclass
class SessionDescription:
    origin: str = ""
    connection: str | None = None
    direction: str = "sendrecv"
    media: list[MediaDescription] = field(default_factory=list)

    def audio(self) -> MediaDescription:
        for m in self.media:
            if m.media == "audio" and m.port != 0:
                return m
        raise SdpError("no active audio stream in SDP")


@dataclass(frozen=True)
class Negotiated:
    """The outcome of offer/answer for our audio stream."""

    address: str
    port: int
    payload_type: int  # the payload type on the wire for the audio codec
    codec: int  # PCMU (0) or PCMA (8): which G.711 law that payload type carries
    dtmf_payload_type: int | None
    direction: str  # the direction *we* use: sendrecv / sendonly / recvonly / inactive

    @property
    def we_send(self) -> bool:
        return self.direction in ("sendrecv", "sendonly") and self.address not in ("0.0.0.0", "::")

    @property
    def we_receive(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")


def parse_sdp(body: bytes | str) -> SessionDescription:
    try:
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    except UnicodeDecodeError as exc:
        raise SdpError("SDP is not UTF-8") from exc
    sd = SessionDescription()
    current: MediaDescription | None = None
    try:
        for raw in text.splitlines():
            line = raw.strip()
            if len(line) < 2 or line[1] != "=":
                continue
            kind, value = line[0], line[2:]
            if kind == "o":
                sd.origin = value
            elif kind == "c":
                parts = value.split()
                if parts[0] != "IN" or parts[1] != "IP4":
                    raise SdpError(f"unsupported connection address type: {value[:40]!r}")
                address = parts[2].split("/")[0]
                if current is None:
                    sd.connection = address
                else:
                    current.connection = address
            elif kind == "m":
                parts = value.split()
                port = _port(parts[1].split("/")[0], allow_zero=True)
                formats = [int(f) for f in parts[3:] if _digits(f) and len(f) <= 3]
                current = MediaDescription(parts[0], port, parts[2], formats)
                sd.media.append(current)
            elif kind == "a":
                name, _, attr = value.partition(":")
                if name in _DIRECTIONS:
                    if current is None:
                        sd.direction = name
                    else:
                        current.direction = name
                elif name == "rtpmap" and current is not None:
                    pt, _, enc = attr.partition(" ")
                    enc_name, _, rest = enc.partition("/")
                    rate = rest.split("/")[0]
                    if not _digits(pt) or len(pt) > 3:
                        raise SdpError(f"bad rtpmap payload type: {pt[:10]!r}")
                    clock = int(rate) if _digits(rate) and len(rate) <= 6 else 8000
                    current.rtpmap[int(pt)] = (enc_name.strip(), clock)
                elif name == "rtcp" and current is not None:
                    current.rtcp_port = _port(attr.split()[0])
    except (IndexError, ValueError) as exc:
        raise SdpError(f"malformed SDP: {exc}") from exc
    return sd


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _port(text: str, allow_zero: bool = False) -> int:
    """A port number: 1-65535 (0 too where it means "stream disabled")."""
    if not _digits(text) or len(text) > 5 or not (0 if allow_zero else 1) <= int(text) <= 65535:
        raise SdpError(f"bad port: {text[:10]!r}")
    return int(text)


def media_address(text: str) -> str:
    """The connection address if RTP may be sent to it: an IPv4 literal, unicast or 0.0.0.0 (hold); else SdpError.
    A name is refused rather than resolved: a lookup per packet on the event loop froze every call."""
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        raise SdpError(f"connection address is not an IPv4 literal: {text[:60]!r}") from None
    if address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255"):
        raise SdpError(f"connection address is not unicast: {text}")
    return str(address)


def _codec_name(m: MediaDescription, pt: int) -> str | None:
    if pt in m.rtpmap:
        name, rate = m.rtpmap[pt]
        return name.upper() if rate == 8000 else None
    return _STATIC.get(pt)


def _telephone_event(m: MediaDescription) -> int | None:
    for pt, (name, rate) in m.rtpmap.items():
        if name.lower() == "telephone-event" and rate == 8000:
            return pt
    return None


def negotiate(sd: SessionDescription, allowed: tuple[int, ...] = (PCMU, PCMA)) -> Negotiated:
    """Pick the codec from the remote SDP (an offer or an answer: their first usable format) and our
    direction, the complement of theirs."""
    m = sd.audio()
    codec = codec_pt = None
    for pt in m.formats:
        name = _codec_name(m, pt)
        if name in _SUPPORTED and _SUPPORTED[name] in allowed:
            codec, codec_pt = _SUPPORTED[name], pt
            break
    if codec is None or codec_pt is None:
        raise SdpError("no common audio codec (PCMU or PCMA) in SDP")
    address = m.connection or sd.connection
    if not address:
        raise SdpError("SDP has no connection address")
    address = media_address(address)
    remote_dir = m.direction or sd.direction
    return Negotiated(address, m.port, codec_pt, codec, _telephone_event(m), _ANSWER_DIRECTION[remote_dir])


def build_sdp(
    *, address: str, port: int, session_id: int, version: int,
    payload_types: tuple[int, ...] = (PCMU, PCMA), dtmf_payload_type: int | None = TELEPHONE_EVENT_PT,
    direction: str = "sendrecv", codec: int | None = None,
) -> bytes:
    """An offer (all our codecs) or an answer (`payload_types` = the chosen one, remote's DTMF type;
    `codec` names the G.711 law when the offer used a dynamic payload type for it)."""
    formats = list(payload_types) + ([dtmf_payload_type] if dtmf_payload_type is not None else [])
    lines = [
        "v=0",
        f"o=talkwire {session_id} {version} IN IP4 {address}",
        "s=talkwire",
        f"c=IN IP4 {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(str(f) for f in formats)}",
    ]
    for pt in payload_types:
        lines.append(f"a=rtpmap:{pt} {_STATIC[codec if codec is not None else pt]}/8000")
    if dtmf_payload_type is not None:
        lines += [f"a=rtpmap:{dtmf_payload_type} telephone-event/8000", f"a=fmtp:{dtmf_payload_type} 0-16"]
    lines += ["a=ptime:20", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()
