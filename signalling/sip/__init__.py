"""SIP phone legs: an asyncio SIP user agent (RFC 3261 subset over UDP), SDP, RTP with G.711, RFC 4733
DTMF and REFER transfers. See docs/sip.md."""
from signalling.sip.leg import SipLeg, outcome_for_status
from signalling.sip.routing import Decision, InboundInvite, Resolver
from signalling.sip.session import CallResult
from signalling.sip.transaction import Timers
from signalling.sip.trunk import Trunk, TrunkError, parse_hostport
from signalling.sip.ua import SipUserAgent

__all__ = [
    "CallResult", "Decision", "InboundInvite", "Resolver", "SipLeg", "SipUserAgent", "Timers", "Trunk", "TrunkError",
    "outcome_for_status", "parse_hostport",
]
