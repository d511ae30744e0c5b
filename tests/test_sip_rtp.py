"""RTP packet handling of one call: header forms, loop detection, symmetric RTP only toward the caller (latching
rules, learning window, no media before the dialog is confirmed), SSRC changes that must persist, DTMF."""
from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest

from media import g711
from media.end_reason import EndReason
from signalling.sip import dtmf
from signalling.sip import rtp as rtp_module
from signalling.sip.dialog import Dialog
from signalling.sip.leg import SipLeg
from signalling.sip.media_engine import RtpMediaEngine
from signalling.sip.message import NameAddr
from signalling.sip.rtp import SSRC_PERSISTENCE, RtpSession
from signalling.sip.rtp_packet import build_rtp, parse_rtp
from signalling.sip.sdp import Negotiated

PEER = ("198.51.100.1", 7000)  # the caller's media, behind NAT: not the SDP's address, but its signalling IP


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


def session(signalling_ip: str | None = "198.51.100.1") -> RtpSession:
    rtp = RtpSession()
    rtp.signalling_ip = signalling_ip
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
    for seq in range(5, 5 + SSRC_PERSISTENCE):  # a new source (e.g. the far end switched media servers)
        rtp.datagram_received(build_rtp(False, 0, seq, 0, 2, b"\x20" * 160), ("198.51.100.1", 7000))
    assert rtp.ssrc_changes == 1 and rtp.remote_ssrc == 2
    assert rtp.ssrc_rejected == SSRC_PERSISTENCE - 1  # it had to persist first
    assert rtp.jitter.pop_item() == b"\x20" * 160


def test_telephone_events_become_digits_once_each():
    digits: list[str] = []
    rtp = RtpSession(on_dtmf=digits.append)
    rtp.signalling_ip = "198.51.100.1"
    rtp.apply(Negotiated("192.0.2.10", 4000, g711.PCMU, g711.PCMU, 101, "sendrecv"))
    rtp.receiving = True
    seq = 0
    for ts, step in zip([8000] * 8 + [16000] * 8, [p for p in dtmf.digit_plan("47") if p is not None]):
        seq += 1
        rtp.datagram_received(build_rtp(step[1], 101, seq, ts, 9, step[0]), ("198.51.100.1", 7000))
    assert digits == ["4", "7"]


def packet(seq: int, ssrc: int = 42, payload: bytes = b"\x10" * 160, pt: int = 0) -> bytes:
    return build_rtp(False, pt, seq, seq * 160, ssrc, payload)


def test_only_the_signalling_peer_or_the_sdp_address_may_latch():
    rtp = session()
    rtp.datagram_received(packet(1), ("203.0.113.66", 7000))  # a stranger, before the caller spoke
    assert not rtp.latched and rtp.remote == ("192.0.2.10", 4000) and rtp.foreign_dropped == 1
    rtp.datagram_received(packet(2), PEER)  # the caller's IP (another port: NAT)
    assert rtp.latched and rtp.remote == PEER
    for seq, source in ((3, ("203.0.113.66", 7000)), (4, ("198.51.100.1", 7002)), (5, ("192.0.2.10", 4000))):
        rtp.datagram_received(packet(seq, payload=b"\x20" * 160), source)  # latched: anyone else is dropped
    assert rtp.foreign_dropped == 4 and rtp.remote == PEER
    assert rtp.jitter.pop_item() == b"\x10" * 160 and rtp.jitter.received == 1


def test_injected_dtmf_and_ssrc_flapping_from_elsewhere_are_dropped():
    digits: list[str] = []
    rtp = session()
    rtp.on_dtmf = digits.append
    for seq in range(1, 6):
        rtp.datagram_received(packet(seq), PEER)
    for n, step in enumerate(p for p in dtmf.digit_plan("999") if p is not None):
        rtp.datagram_received(build_rtp(step[1], 101, 100 + n, 9000, 7, step[0]), ("203.0.113.66", 9999))
    for n in range(50):  # one packet per frame, each with a random SSRC, from the attacker
        rtp.datagram_received(packet(200 + n, ssrc=1000 + n), ("203.0.113.66", 9999))
    assert digits == [] and rtp.remote_ssrc == 42 and rtp.ssrc_changes == 0 and rtp.jitter.received == 5


def test_a_new_ssrc_from_the_latched_source_must_persist():
    rtp = session()
    rtp.datagram_received(packet(1), PEER)
    for n in range(40):  # flapping: a fresh SSRC per packet never persists, the stream is never reset
        rtp.datagram_received(packet(100 + n, ssrc=5000 + n, payload=b"\x30" * 160), PEER)
        rtp.datagram_received(packet(2 + n), PEER)
    assert rtp.remote_ssrc == 42 and rtp.ssrc_changes == 0 and rtp.ssrc_rejected == 40
    assert rtp.jitter.received == 41
    for n in range(SSRC_PERSISTENCE - 1):  # interrupted by the current source: must start over
        rtp.datagram_received(packet(300 + n, ssrc=77), PEER)
    rtp.datagram_received(packet(50), PEER)
    rtp.datagram_received(packet(303, ssrc=77), PEER)
    assert rtp.remote_ssrc == 42


def test_after_the_learning_window_only_the_sdp_address_latches(monkeypatch):
    rtp = session()
    now = rtp_module._monotonic()
    monkeypatch.setattr(rtp_module, "_monotonic", lambda: now + rtp_module.LEARNING_WINDOW + 1)
    rtp.datagram_received(packet(1), PEER)
    assert not rtp.latched and rtp.foreign_dropped == 1
    rtp.datagram_received(packet(2), ("192.0.2.10", 4000))
    assert rtp.latched and rtp.remote == ("192.0.2.10", 4000)


def test_no_media_before_the_dialog_is_confirmed_or_the_sdp_address_spoke():
    rtp = session()
    rtp.set_sending(True)
    assert not rtp.sending  # a 200 OK not yet ACKed: nothing goes to the address the SDP names
    rtp.datagram_received(packet(1), PEER)  # latched to the caller's NAT address: still not confirmed
    assert rtp.latched and not rtp.sending
    rtp.confirm()  # the ACK
    assert rtp.sending
    other = session()
    other.set_sending(True)
    other.datagram_received(packet(1), ("192.0.2.10", 4000))  # RTP from exactly the SDP's address
    assert other.sending
    on_hold = session()
    on_hold.confirm()
    on_hold.set_sending(False)
    assert not on_hold.sending


def test_rtcp_only_from_the_call_and_none_beyond_port_65535():
    rtp = session()
    report = struct.pack("!BBHI", 0x80, 201, 1, 99)
    rtp.rtcp_received(report, ("203.0.113.66", 4001))
    rtp.rtcp_received(report, ("192.0.2.10", 4001))
    assert rtp.rtcp_packets_received == 1 and rtp.foreign_dropped == 1
    edge = RtpSession()
    edge.apply(Negotiated("192.0.2.10", 65535, g711.PCMU, g711.PCMU, None, "sendrecv"))
    assert edge.remote == ("192.0.2.10", 65535) and edge.remote_rtcp is None


@pytest.mark.parametrize("data", [b"", b"\x80" * 11, b"\xff" * 200, b"\x80\x63" + b"\x00" * 10, b"\xbf" * 40])
def test_garbage_is_counted_never_raised(data):
    rtp = session()
    rtp.datagram_received(data, PEER)
    assert not rtp.latched and rtp.jitter.received == 0


def test_the_answer_reopens_the_learning_window_when_nothing_latched(monkeypatch):
    """Early media's SDP, 30 s of ringing without a packet, then the answer with the same SDP: its media, from the
    caller's IP on another port, may still be latched to."""
    rtp = session()
    now = rtp_module._monotonic()
    monkeypatch.setattr(rtp_module, "_monotonic", lambda: now + 30)
    rtp.apply(Negotiated("192.0.2.10", 4000, g711.PCMU, g711.PCMU, 101, "sendrecv"))
    rtp.datagram_received(packet(1), PEER)
    assert rtp.latched and rtp.remote == PEER


async def test_a_call_whose_consumer_raises_leaves_the_tick_and_the_others_go_on():
    """The media engine hands every call's frame to its conversation inside one tick: a consumer that raises takes
    its own call out of the tick (hung up as media_error), and the calls after it in the same tick still get theirs."""
    hung_up: list[str] = []

    class Control:
        async def hangup_leg(self, leg: SipLeg, reason: str) -> None:
            hung_up.append(reason)

        async def transfer_leg(self, leg: SipLeg, target: str) -> None: ...

        async def send_dtmf(self, leg: SipLeg, digits: str) -> None: ...

    engine = RtpMediaEngine(clock=None)  # type: ignore[arg-type]  # ticked by hand
    heard = {0: 0, 1: 0, 2: 0}
    legs = []
    for n in range(3):
        rtp = await RtpSession.open("127.0.0.1", (20000, 29999))
        dialog = Dialog(f"c{n}", NameAddr("", "sip:a@b", {"tag": "1"}), NameAddr("", "sip:c@d", {}), "sip:c@d", 1)
        leg = SipLeg(Control(), direction="inbound", rtp=rtp, remote_number="x", local_number="y", dialog=dialog)

        def consume(frame, n=n):
            if n == 1:
                raise RuntimeError("a conversation bug")
            heard[n] += 1

        leg.consume(consume)
        engine.start_leg(leg, Negotiated("127.0.0.1", 9, g711.PCMU, g711.PCMU, None, "sendrecv"))
        rtp.datagram_received(packet(1), ("127.0.0.1", 9))
        rtp.datagram_received(packet(2), ("127.0.0.1", 9))
        legs.append(leg)
    engine.tick(0.0)
    engine.tick(0.0)
    await asyncio.sleep(0)
    assert heard == {0: 2, 1: 0, 2: 2}
    assert engine.leg_errors == 1 and legs[1] not in engine.legs and hung_up == [EndReason.MEDIA_ERROR]
    for leg in legs:
        leg.rtp.close()
    await engine.stop()
