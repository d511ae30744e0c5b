"""The user agent's calls by Call-ID, and how a call ends.

An ended call stays here `linger` seconds: its RTP socket absorbs late packets and its dialog still matches
retransmitted BYEs and responses; then it is forgotten and its socket closed.
"""
from __future__ import annotations

from signalling.sip.background import Background
from signalling.sip.leg import SipLeg
from signalling.sip.media_engine import RtpMediaEngine
from signalling.sip.message import Request


class CallTable:
    def __init__(self, media: RtpMediaEngine, background: Background, linger: float) -> None:
        self.media = media
        self.background = background
        self.linger = linger
        self.legs: dict[str, SipLeg] = {}

    def add(self, leg: SipLeg) -> None:
        self.legs[leg.call_id] = leg

    def dialog_leg(self, req: Request) -> SipLeg | None:
        """The call an in-dialog request belongs to (Call-ID and both tags match), or None."""
        leg = self.legs.get(req.call_id)
        if leg is None or not leg.dialog.matches(req.from_.tag, req.to.tag):
            return None
        return leg

    def end(self, leg: SipLeg, reason: str, status: int | None = None) -> None:
        """End the call now (idempotent): the session terminates, media stops, `leg.ended` resolves."""
        if leg.ended.done() or not leg.session.end(reason, status):
            return
        self.media.stop_leg(leg)
        leg.finish(reason)
        self.background.later(self.linger, lambda: self._forget(leg))

    def _forget(self, leg: SipLeg) -> None:
        leg.rtp.close()
        if self.legs.get(leg.call_id) is leg:
            del self.legs[leg.call_id]

    def close(self) -> None:
        for leg in self.legs.values():
            leg.rtp.close()
        self.legs.clear()
