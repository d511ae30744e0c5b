"""RTP (RFC 3550) for one call: a UDP socket pair from a port range, G.711 in and out, RFC 4733 DTMF,
symmetric RTP, loop detection by our own SSRC, and RTCP sender/receiver reports.

Receiving is event-driven (datagram → checks → jitter buffer, still encoded); the user agent's tick
pops and decodes every call's due frame in one array operation, encodes every call's outbound frame
in another, and calls `send_payload` per call.

Only the caller steers the media (the "RTP Bleed" defences):
- nothing is sent before the dialog is confirmed (`confirm()`: the ACK of our 2xx, or the 2xx to our INVITE) or
  RTP arrived from exactly the address the SDP names; until then a never-ACKed INVITE cannot aim our audio at
  a third party;
- symmetric RTP (latching, for callers behind NAT) only to a source whose IP is the signalling peer's or the
  SDP's, and only within `LEARNING_WINDOW` seconds of the SDP (after it, only the SDP address itself); once
  latched, a datagram from any other source is dropped and counted (`foreign_dropped`): no injected speech or
  DTMF, no hijacked audio;
- a new SSRC from the latched source replaces the current one only after `SSRC_PERSISTENCE` consecutive
  packets (`ssrc_rejected` counts the others), so one packet per frame with a random SSRC cannot keep
  resetting the jitter buffer. RTCP is accepted from the latched (or an allowed) IP only.
All of it is decided per call (the latched source is one tuple comparison per packet).
"""
from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import struct
import time
from collections.abc import Callable
from functools import partial

from media import g711
from media.jitter import JitterBuffer
from media.log_limit import LimitedLog
from signalling.sip.dtmf import DtmfReceiver
from signalling.sip.rtp_packet import FAST_HEADER, HEADER, build_rtp, parse_rtp
from signalling.sip.sdp import Negotiated
from signalling.sip.srtp import SrtpContext

log = logging.getLogger(__name__)
_limited = LimitedLog(log)

FRAME_SAMPLES = 160
RTCP_INTERVAL_TICKS = 250  # 5 s
LEARNING_WINDOW = 3.0  # seconds after the SDP in which a source may be latched (symmetric RTP)
SSRC_PERSISTENCE = 4  # consecutive packets a new SSRC must send before it replaces the current one
_NTP_EPOCH = 2208988800
_monotonic = time.monotonic


class _RtcpProtocol(asyncio.DatagramProtocol):
    def __init__(self, session: RtpSession) -> None:
        self.session = session

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.session.rtcp_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTCP socket error: %s", exc)


class RtpSession:
    """RTP for one call. The RTP socket is not on the event loop: the user agent's tick reads it
    (`read_one()` while its poller says it is readable), and inbound payloads wait in `jitter` until that
    tick pops and decodes them."""

    def __init__(self, on_dtmf: Callable[[str], None] | None = None) -> None:
        self.ssrc = secrets.randbits(32)
        self.seq = random.randrange(0x10000)
        self.timestamp = random.randrange(1 << 32)
        self.local_port = 0
        self.sock: socket.socket | None = None
        self._sendto: Callable[[bytes, tuple[str, int]], int] | None = None
        self.rtcp_transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.remote_rtcp: tuple[str, int] | None = None
        self.latched = False
        self._source: tuple[str, int] | None = None  # the latched source: the only one accepted
        self._sdp_address: tuple[str, int] | None = None
        self.signalling_ip: str | None = None  # the SIP peer's IP: a source we may latch to (NAT)
        self._learn_until = 0.0
        self._want_send = False  # the negotiated direction lets us send
        self._confirmed = False  # the dialog is confirmed, or RTP came from the SDP's address
        self.negotiated: Negotiated | None = None
        self.codec = g711.PCMU  # the negotiated G.711 law (the media tick reads it per call per tick)
        # Playout starts at the first frame: caller audio feeds the VAD and STT, never a loudspeaker, and
        # each frame of delay here is a frame later for barge-in and end of turn. What arrives between two
        # ticks is still put in order; jitter makes an underrun, which conceals without moving on, so the
        # late packet still plays a tick later and the delay grows to what the path needs.
        self.jitter = JitterBuffer(FRAME_SAMPLES, target=1)
        self.dtmf = DtmfReceiver()
        self.on_dtmf = on_dtmf
        self.remote_ssrc: int | None = None
        self.receiving = False  # set once media may flow in (early media or answer)
        self.sending = False
        self._marker_next = True
        self._dtmf_plan: list = []
        self._dtmf_done: asyncio.Future | None = None
        self._dtmf_timestamp = 0
        # statistics
        self.packets_sent = 0
        self.octets_sent = 0
        self.packets_received = 0
        self.own_ssrc_discarded = 0
        self.invalid_received = 0
        self.ssrc_changes = 0
        self.foreign_dropped = 0  # RTP and RTCP from a source that is not the call's
        self.ssrc_rejected = 0  # packets of a new SSRC that did not (yet) persist
        self._candidate_ssrc: int | None = None
        self._candidate_count = 0
        self.rtcp_packets_received = 0
        self._base_seq: int | None = None
        self._max_seq = 0  # extended highest sequence number of the current remote source
        self._source_received = 0
        self._transit: float | None = None
        self.interarrival_jitter = 0.0
        self._ticks = 0
        self.closed = False
        self.srtp: SrtpContext | None = None  # SDES-keyed SRTP of this call (srtp.py); None: plain RTP, no cost

    # ---- socket setup
    @classmethod
    async def open(cls, host: str, port_range: tuple[int, int],
                   on_dtmf: Callable[[str], None] | None = None) -> RtpSession:
        """Bind an even RTP port and the next odd RTCP port in `port_range` (inclusive)."""
        loop = asyncio.get_running_loop()
        low, high = port_range
        low += low % 2
        if low + 1 > high:
            raise OSError(f"RTP port range {port_range} holds no even/odd port pair")
        last_error: OSError | None = None
        for _attempt in range(64):
            port = random.randrange(low, high, 2)  # even RTP port, RTCP on port + 1 <= high
            session = cls(on_dtmf)
            rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rtcp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtp_sock.bind((host, port))
                rtcp_sock.bind((host, port + 1))
            except OSError as exc:
                rtp_sock.close()
                rtcp_sock.close()
                last_error = exc
                continue
            rtp_sock.setblocking(False)
            rtcp_sock.setblocking(False)
            rtcp, _ = await loop.create_datagram_endpoint(partial(_RtcpProtocol, session), sock=rtcp_sock)
            session.rtcp_transport = rtcp
            session.local_port = port
            # Media goes through the raw non-blocking socket, polled and written once per tick: an
            # event-loop callback per datagram costs several times the datagram itself, and a full
            # socket buffer just drops a packet, as the network would.
            session.sock = rtp_sock
            session._sendto = rtp_sock.sendto
            return session
        raise OSError(f"no free RTP port pair in {port_range}: {last_error}")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.packets_sent and self.remote_rtcp is not None and self.rtcp_transport is not None:
            self._send_rtcp(bye=True)
        if self.rtcp_transport is not None:
            self.rtcp_transport.close()
        if self.sock is not None:
            self.sock.close()
        if self._dtmf_done is not None and not self._dtmf_done.done():
            self._dtmf_done.set_exception(ConnectionError("call ended while sending DTMF"))

    def apply(self, negotiated: Negotiated) -> None:
        """Use the negotiated remote address, codec and direction (answer, 183 or re-INVITE). A new address
        forgets the latched source; a new SDP opens a new learning window while nothing is latched (an answer
        may come long after the early media's SDP, and its media only then)."""
        self.negotiated = negotiated
        self.codec = negotiated.codec
        address = (negotiated.address, negotiated.port)
        if address != self._sdp_address:
            self._sdp_address = address
            self.latched = False
            self._source = None
            self._set_remote(address)
        if not self.latched:
            self._learn_until = _monotonic() + LEARNING_WINDOW

    def _set_remote(self, address: tuple[str, int]) -> None:
        self.remote = address
        self.remote_rtcp = (address[0], address[1] + 1) if address[1] < 0xFFFF else None

    # ---- may we send
    def set_sending(self, want: bool) -> None:
        """Whether the negotiated direction lets us send; `sending` also needs the dialog confirmed."""
        self._want_send = want
        self.sending = want and self._confirmed

    def confirm(self) -> None:
        """The dialog is confirmed (our 2xx was ACKed, or we got the 2xx): media may go to the peer."""
        self._confirmed = True
        self.sending = self._want_send

    # ---- receiving
    def read_one(self) -> None:
        """Read one datagram from the RTP socket, if one is waiting (the user agent's tick calls this for
        the sockets its poller reported readable)."""
        sock = self.sock
        if sock is None or self.closed:
            return
        try:
            data, addr = sock.recvfrom(2048)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # e.g. an ICMP error for an earlier send, reported here
            log.debug("RTP receive error: %s", exc)
            return
        self.datagram_received(data, addr)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """One RTP datagram from `addr`."""
        try:
            if self.srtp is not None:
                data = self.srtp.unprotect(data)  # raises for a packet that does not authenticate
            self._receive(data, addr)
        except Exception as exc:  # a hostile packet must never take the socket down, nor fill the log
            self.invalid_received += 1
            _limited.log(logging.WARNING, ("rtp", type(exc).__name__), "dropping an RTP packet from %s: %r",
                         addr[0], exc)

    def _receive(self, data: bytes, addr: tuple[str, int]) -> None:
        neg = self.negotiated
        if neg is None or len(data) < 12:
            self.invalid_received += 1
            return
        if data[0] == 0x80:  # the common case: no padding, extension or CSRCs
            b1, seq, timestamp, ssrc = FAST_HEADER.unpack_from(data, 1)
            pt = b1 & 0x7F
            payload = data[12:]
        else:
            pkt = parse_rtp(data)
            if pkt is None:
                self.invalid_received += 1
                return
            pt, seq, timestamp, ssrc, payload = pkt.payload_type, pkt.seq, pkt.timestamp, pkt.ssrc, pkt.payload
        if ssrc == self.ssrc:
            # RFC 3550 §8.2 loop detection: our own packets coming back (an echoing peer, a loop).
            self.own_ssrc_discarded += 1
            return
        if pt != neg.payload_type and pt != neg.dtmf_payload_type:
            self.invalid_received += 1
            return
        if addr != self._source and not self._latch(addr):
            self.foreign_dropped += 1
            return
        if ssrc != self.remote_ssrc:
            if self.remote_ssrc is not None:
                if not self._persists(ssrc):
                    self.ssrc_rejected += 1
                    return
                self.ssrc_changes += 1
                self.jitter.reset()
            self.remote_ssrc = ssrc
            self._base_seq = self._max_seq = seq
            self._source_received = 0
            self._transit = None
        elif self._candidate_ssrc is not None:
            self._candidate_ssrc = None  # the current source spoke again: a newcomer must start over
        delta = (seq - self._max_seq) & 0xFFFF
        if delta < 0x8000:
            self._max_seq += delta
        self._source_received += 1
        self.packets_received += 1
        self._update_jitter(timestamp)
        if not self.receiving:
            return
        if pt == neg.dtmf_payload_type:
            digit = self.dtmf.feed(timestamp, payload)
            if digit is not None and self.on_dtmf is not None:
                self.on_dtmf(digit)
            return
        if len(payload) != FRAME_SAMPLES:
            # Another ptime: keep the 20 ms framing of the jitter buffer by padding/cutting.
            payload = payload[:FRAME_SAMPLES].ljust(FRAME_SAMPLES, b"\xff" if neg.codec == g711.PCMU else b"\xd5")
        self.jitter.put(seq, payload)  # decoded at the tick, together with every other call's frame

    def _latch(self, addr: tuple[str, int]) -> bool:
        """A valid packet from a source we have not latched: latch to it when it may steer our media (symmetric
        RTP), else False (it is dropped). Runs once per call, not per packet, unless someone else is sending."""
        if self.latched:
            return False
        sdp = self._sdp_address
        if addr != sdp:
            allowed = sdp is not None and addr[0] in (sdp[0], self.signalling_ip)
            if not allowed or _monotonic() > self._learn_until:
                return False
        self.latched = True
        self._source = (addr[0], addr[1])
        self._set_remote(self._source)
        if addr == sdp:  # the peer proved it owns the address it named: media may flow before the ACK
            self.confirm()
        return True

    def _persists(self, ssrc: int) -> bool:
        """A packet of a new SSRC from the latched source: True once it came `SSRC_PERSISTENCE` times in a row."""
        if ssrc != self._candidate_ssrc:
            self._candidate_ssrc = ssrc
            self._candidate_count = 0
        self._candidate_count += 1
        if self._candidate_count < SSRC_PERSISTENCE:
            return False
        self._candidate_ssrc = None
        return True

    def _update_jitter(self, rtp_ts: int) -> None:
        transit = _monotonic() * 8000 - rtp_ts
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < 8000 * 10:  # ignore timestamp jumps (a new talkspurt after a long pause)
                self.interarrival_jitter += (d - self.interarrival_jitter) / 16
        self._transit = transit

    # ---- sending
    def send_payload(self, payload: bytes) -> None:
        """Called once per tick with this tick's encoded audio; DTMF events take the slot when queued."""
        neg = self.negotiated
        if self.remote is None or neg is None or self._sendto is None or self.closed:
            return
        self._ticks += 1
        if self._ticks % RTCP_INTERVAL_TICKS == 0:
            self._send_rtcp()
        if self._dtmf_plan:
            self._send_dtmf_step(neg)
        else:
            self._emit(HEADER.pack(0x80, (0x80 if self._marker_next else 0) | neg.payload_type, self.seq,
                                    self.timestamp, self.ssrc) + payload, len(payload))
            self._marker_next = False
        self.timestamp = (self.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF

    def _emit(self, packet: bytes, payload_len: int) -> None:
        self.seq = (self.seq + 1) & 0xFFFF  # a packet we fail to send is lost, as on the network
        sendto, remote = self._sendto, self.remote
        if sendto is None or remote is None:
            return
        if self.srtp is not None:
            packet = self.srtp.protect(packet)
        try:
            sendto(packet, remote)
        except (BlockingIOError, InterruptedError):
            return  # socket buffer full
        except OSError as exc:  # e.g. ICMP port unreachable reported on the socket: the peer is gone for now
            log.debug("RTP send failed: %s", exc)
            return
        self.packets_sent += 1
        self.octets_sent += payload_len

    @property
    def dtmf_pending(self) -> bool:
        return bool(self._dtmf_plan)

    def queue_dtmf(self, plan: list) -> asyncio.Future:
        """Queue an RFC 4733 plan (see dtmf.digit_plan); the future resolves when it was sent."""
        if self._dtmf_done is not None and not self._dtmf_done.done():
            raise RuntimeError("DTMF already being sent on this call")
        self._dtmf_plan = list(plan)
        self._dtmf_done = asyncio.get_running_loop().create_future()
        return self._dtmf_done

    def _send_dtmf_step(self, neg: Negotiated) -> None:
        step = self._dtmf_plan.pop(0)
        if step is not None and neg.dtmf_payload_type is not None:
            payload, marker, new_event = step
            if new_event:
                self._dtmf_timestamp = self.timestamp
            packet = build_rtp(marker, neg.dtmf_payload_type, self.seq, self._dtmf_timestamp, self.ssrc, payload)
            self._emit(packet, len(payload))
        if not self._dtmf_plan:
            self._marker_next = True  # audio resumes as a new talkspurt
            if self._dtmf_done is not None and not self._dtmf_done.done():
                self._dtmf_done.set_result(None)

    # ---- RTCP
    def _send_rtcp(self, bye: bool = False) -> None:
        if self.rtcp_transport is None or self.remote_rtcp is None:
            return
        blocks = b""
        count = 0
        if self.remote_ssrc is not None and self._base_seq is not None:
            count = 1
            expected = self._max_seq - self._base_seq + 1
            lost = min(max(0, expected - self._source_received), 0x7FFFFF)
            highest = self._max_seq & 0xFFFFFFFF
            blocks = struct.pack("!IB3sIIII", self.remote_ssrc, 0, lost.to_bytes(3, "big"), highest,
                                 int(self.interarrival_jitter), 0, 0)
        now = time.time() + _NTP_EPOCH
        ntp_sec = int(now)
        ntp_frac = int((now - ntp_sec) * (1 << 32))
        if self.packets_sent:
            body = struct.pack("!IIIIII", self.ssrc, ntp_sec, ntp_frac, self.timestamp, self.packets_sent & 0xFFFFFFFF,
                               self.octets_sent & 0xFFFFFFFF) + blocks
            packet = struct.pack("!BBH", 0x80 | count, 200, (len(body) + 4) // 4 - 1) + body
        else:
            body = struct.pack("!I", self.ssrc) + blocks
            packet = struct.pack("!BBH", 0x80 | count, 201, (len(body) + 4) // 4 - 1) + body
        if bye:
            packet += struct.pack("!BBHI", 0x81, 203, 1, self.ssrc)
        protected = self.srtp.protect_rtcp(packet) if self.srtp is not None else packet
        self.rtcp_transport.sendto(protected, self.remote_rtcp)

    def rtcp_received(self, data: bytes, addr: tuple) -> None:
        source = self._source or self._sdp_address
        if source is None or (addr[0] != source[0] and (self.latched or addr[0] != self.signalling_ip)):
            self.foreign_dropped += 1
            return
        if self.srtp is not None:
            try:
                data = self.srtp.unprotect_rtcp(data)
            except Exception:  # not authentic, or before their key
                self.invalid_received += 1
                return
        if len(data) >= 8 and data[0] >> 6 == 2 and 200 <= data[1] <= 204:
            if struct.unpack_from("!I", data, 4)[0] != self.ssrc:
                self.rtcp_packets_received += 1
