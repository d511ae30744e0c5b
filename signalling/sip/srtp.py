"""SRTP with keys exchanged in SDP (SDES, RFC 4568), per call, through libsrtp (pylibsrtp).

    offer:   ctx = SrtpContext()                      # our key; the offer says RTP/SAVP + a=crypto (decorate)
             ctx.accept_answer(answer_body)           # their key from the answer's a=crypto with our tag
    answer:  ctx = SrtpContext.for_offer(offer_body)  # None for a plain RTP/AVP offer; their key, our own key
    rtp.srtp = ctx                                    # the RTP session protects/unprotects through it

A plain RTP call has no context (`rtp.srtp is None`) and pays nothing. An offer of RTP/SAVP without a crypto
suite we support, or an answer without the crypto line for our tag, is an SdpError (488 / the call fails):
we never fall back to clear media on a call that asked for SRTP.
"""
from __future__ import annotations

import base64
import os
import re

from pylibsrtp import Policy, Session

from signalling.sip.sdp import SdpError

SUITES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
KEY_AND_SALT = 30  # AES-128 key (16) + salt (14)
CRYPTO = re.compile(r"^a=crypto:(\d{1,9})\s+(\S+)\s+inline:([A-Za-z0-9+/=]+)(?:\|\S*)*(?:\s.*)?$")


def audio_section(body: bytes) -> tuple[str, list[str]]:
    """(the audio m= line's transport protocol, the a= lines of that media section)."""
    text = body.decode("utf-8", "replace")
    proto, attributes, in_audio = "", [], False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            parts = line[2:].split()
            in_audio = bool(parts) and parts[0] == "audio" and not proto
            if in_audio:
                proto = parts[2] if len(parts) > 2 else ""
        elif in_audio and line.startswith("a="):
            attributes.append(line)
    return proto, attributes


def offered_crypto(body: bytes) -> list[tuple[int, str, bytes]]:
    """The (tag, suite, key+salt) of each a=crypto line of the audio section we could use, in offer order."""
    found = []
    for line in audio_section(body)[1]:
        match = CRYPTO.match(line)
        if match is None or match.group(2) not in SUITES:
            continue
        try:
            key = base64.b64decode(match.group(3), validate=True)
        except ValueError:
            continue
        if len(key) == KEY_AND_SALT:
            found.append((int(match.group(1)), match.group(2), key))
    return found


class SrtpContext:
    def __init__(self, suite: str = "AES_CM_128_HMAC_SHA1_80", tag: int = 1) -> None:
        self.suite = suite
        self.tag = tag
        self.local_key = os.urandom(KEY_AND_SALT)
        profile = SUITES[suite]
        self._tx = Session(Policy(key=self.local_key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
        self._rx: Session | None = None
        self.unprotect_failures = 0

    @classmethod
    def for_offer(cls, offer: bytes) -> SrtpContext | None:
        """Answering: None for a plain RTP offer; else a context with their key and a fresh one of ours."""
        proto = audio_section(offer)[0].upper()
        if "SAVP" not in proto:
            return None
        if proto != "RTP/SAVP":
            raise SdpError(f"unsupported secure media profile {proto}")  # e.g. DTLS (UDP/TLS/RTP/SAVP)
        offered = offered_crypto(offer)
        if not offered:
            raise SdpError("SRTP offered without a crypto suite we support")
        tag, suite, key = offered[0]
        context = cls(suite, tag)
        context.set_remote(key)
        return context

    def accept_answer(self, answer: bytes) -> None:
        """Offering: take the answerer's key (their a=crypto line with our tag and suite)."""
        for tag, suite, key in offered_crypto(answer):
            if tag == self.tag and suite == self.suite:
                self.set_remote(key)
                return
        raise SdpError("the answer to our SRTP offer has no matching crypto line")

    def set_remote(self, key: bytes) -> None:
        self._rx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=SUITES[self.suite]))

    @property
    def attribute(self) -> str:
        return f"a=crypto:{self.tag} {self.suite} inline:{base64.b64encode(self.local_key).decode()}"

    # ---- per packet (the RTP session calls these)
    def protect(self, packet: bytes) -> bytes:
        return self._tx.protect(packet)

    def protect_rtcp(self, packet: bytes) -> bytes:
        return self._tx.protect_rtcp(packet)

    def unprotect(self, packet: bytes) -> bytes:
        """The clear RTP packet; raises (the packet is dropped) when it does not authenticate or no key yet."""
        if self._rx is None:
            raise SdpError("SRTP before the peer's key")
        return self._rx.unprotect(packet)

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        if self._rx is None:
            raise SdpError("SRTCP before the peer's key")
        return self._rx.unprotect_rtcp(packet)


def decorate(sdp: bytes, context: SrtpContext | None) -> bytes:
    """Our SDP for an SRTP call: the audio stream as RTP/SAVP with our a=crypto line (unchanged without one)."""
    if context is None:
        return sdp
    lines = sdp.decode().split("\r\n")
    for i, line in enumerate(lines):
        if line.startswith("m=audio ") and " RTP/AVP " in line:
            lines[i] = line.replace(" RTP/AVP ", " RTP/SAVP ", 1)
            lines.insert(i + 1, context.attribute)
            break
    return "\r\n".join(lines).encode()
