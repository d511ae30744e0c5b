"""The RTP packet format (RFC 3550 §5.1): the fixed header, CSRCs, a header extension and padding."""
from __future__ import annotations

import struct

HEADER = struct.Struct("!BBHII")
FAST_HEADER = struct.Struct("!BHII")  # the header after its first byte


class RtpPacket:
    __slots__ = ("marker", "payload_type", "seq", "timestamp", "ssrc", "payload")

    def __init__(self, marker: bool, payload_type: int, seq: int, timestamp: int, ssrc: int, payload: bytes) -> None:
        self.marker = marker
        self.payload_type = payload_type
        self.seq = seq
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload


def parse_rtp(data: bytes) -> RtpPacket | None:
    """Parse an RTP packet; None if it is not one (wrong version, truncated, RTCP)."""
    if len(data) < 12:
        return None
    b0, b1, seq, ts, ssrc = HEADER.unpack_from(data)
    if b0 >> 6 != 2:
        return None
    pt = b1 & 0x7F
    if 72 <= pt <= 76:  # RTCP SR/RR/SDES/BYE/APP multiplexed on the RTP port (RFC 5761)
        return None
    offset = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:  # header extension
        if len(data) < offset + 4:
            return None
        ext_words = struct.unpack_from("!H", data, offset + 2)[0]
        offset += 4 + 4 * ext_words
    end = len(data)
    if b0 & 0x20:  # padding
        pad = data[-1]
        if pad == 0 or pad > end - offset:
            return None
        end -= pad
    if offset > end:
        return None
    return RtpPacket(bool(b1 & 0x80), pt, seq, ts, ssrc, data[offset:end])


def build_rtp(marker: bool, payload_type: int, seq: int, timestamp: int, ssrc: int, payload: bytes) -> bytes:
    header = HEADER.pack(0x80, (0x80 if marker else 0) | payload_type, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
    return header + payload
