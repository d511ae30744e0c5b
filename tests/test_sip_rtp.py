"""RTP packet handling of one call: header forms, loop detection, symmetric RTP, SSRC changes, DTMF."""
from __future__ import annotations

import struct

import numpy as np

from media import g711
from signalling.sip import dtmf
from signalling.sip.rtp import RtpSession, build_rtp, parse_rtp
from signalling.sip.sdp import Negotiated


def test_parse_handles_csrcs_extension_and_padding():
    payload = bytes(range(160))
    plain = build_rtp(True, 0, 7, 1234, 0xDEADBEEF, payload)
    pkt = parse_rtp(plain)
    assert (pkt.marker, pkt.payload_type, pkt.seq, pkt.timestamp, pkt.ssrc, pkt.payload) == (True, 0, 7, 1234, 0xDEADBEEF, payload)
    # 2 CSRCs, a one-word extension and 4 bytes of padding around the same payload.
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 0, 8, 1394, 1) + b"\0" * 8
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\0" * 4
    pkt = parse_rtp(header + extension + payload + b"\0\0\0\4")
    assert pkt.payload == payload and pkt.seq == 8
    assert parse_rtp(b"\x80\x00") is None  # truncated
    assert parse_rtp(b"\x40" + plain[1:]) is None  # version 1
    assert parse_rtp(b"\x80\xc8" + plain[2:]) is None  # RTCP SR on the RTP port
    assert parse_rtp(header + extension + b"\0\0\0\xff") is None  # padding longer than the packet


def session() -> RtpSession:
    rtp = RtpSession()
    rtp.apply(Negotiated("192.0.2.10", 4000, g711.PCMU, g711.PCMU, 101, "sendrecv"))
    rtp.receiving = True
    return rtp


def test_own_ssrc_is_discarded_and_valid_packets_latch_the_remote_address():
    rtp = session()
    tone = (np.sin(np.arange(160) / 3) * 8000).astype(np.int16)
    rtp.datagram_received(build_rtp(False, 0, 1, 0, rtp.ssrc, g711.ulaw_encode(tone).tobytes()), ("198.51.100.1", 7000))
    assert rtp.own_ssrc_discarded == 1 and not rtp.latched and rtp.remote == ("192.0.2.10", 4000)
    rtp.datagram_received(build_rtp(False, 18, 1, 0, 42, b"\0" * 20), ("198.51.100.1", 7000))  # not negotiated
    assert rtp.invalid_received == 1 and not rtp.latched
    for seq in range(1, 4):
        rtp.datagram_received(build_rtp(False, 0, seq, seq * 160, 42, g711.ulaw_encode(tone).tobytes()), ("198.51.100.1", 7000))
    assert rtp.latched and rtp.remote == ("198.51.100.1", 7000) and rtp.remote_rtcp == ("198.51.100.1", 7001)
    assert rtp.jitter.pop_item() == g711.ulaw_encode(tone).tobytes()  # decoded later, at the tick


def test_remote_ssrc_change_restarts_the_stream():
    rtp = session()
    for seq in (100, 101, 102):
        rtp.datagram_received(build_rtp(False, 0, seq, 0, 1, b"\x10" * 160), ("198.51.100.1", 7000))
    assert rtp.jitter.pop_item() == b"\x10" * 160
    for seq in (5, 6, 7):  # a new source (e.g. the far end switched to another media server)
        rtp.datagram_received(build_rtp(False, 0, seq, 0, 2, b"\x20" * 160), ("198.51.100.1", 7000))
    assert rtp.ssrc_changes == 1 and rtp.remote_ssrc == 2
    assert rtp.jitter.pop_item() == b"\x20" * 160


def test_telephone_events_become_digits_once_each():
    digits: list[str] = []
    rtp = RtpSession(on_dtmf=digits.append)
    rtp.apply(Negotiated("192.0.2.10", 4000, g711.PCMU, g711.PCMU, 101, "sendrecv"))
    rtp.receiving = True
    seq = 0
    for ts, step in zip([8000] * 8 + [16000] * 8, [p for p in dtmf.digit_plan("47") if p is not None]):
        seq += 1
        rtp.datagram_received(build_rtp(step[1], 101, seq, ts, 9, step[0]), ("198.51.100.1", 7000))
    assert digits == ["4", "7"]
