"""One home for the SIP messages the user agent writes: responses, INVITE, in-dialog requests, CANCEL, the ACK of
a 2xx, and the capability table behind `Allow`, `Accept` and `Supported`.

Capabilities: `Allow` lists the methods we *accept* (RFC 3261 §20.5), so it is built from the methods the user
agent has a handler for. REFER is not among them: we send REFER (blind transfer of the caller) but answer an
inbound one 405 (see docs/sip.md). `Supported` lists no option tag: no extension (replaces, timer, 100rel) is
implemented, and advertising one invites requests we would then refuse.
"""
from __future__ import annotations

from typing import Protocol

from signalling.sip.dialog import Dialog, new_branch
from signalling.sip.message import Headers, Request, Response, parse_name_addr
from signalling.sip.rtp import RtpSession
from signalling.sip.sdp import Negotiated, build_sdp
from signalling.sip.srtp import decorate
from signalling.sip.transaction import Address, invite_companion_headers

# Methods we answer, in the order `Allow` lists them. ACK is absorbed by the INVITE it belongs to.
ACCEPTED_METHODS: tuple[str, ...] = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "NOTIFY", "INFO")
SUPPORTED_EXTENSIONS: tuple[str, ...] = ()  # RFC 3261 option tags; none implemented
ACCEPTED_BODIES: tuple[str, ...] = ("application/sdp",)
ALLOW = ", ".join(ACCEPTED_METHODS)
USER_AGENT = "Talkwire"
REASONS = {
    100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted",
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
    500: "Server Internal Error", 503: "Service Unavailable", 603: "Decline",
}


class Reply(Protocol):
    """Answers the request being handled, through its server transaction."""

    def __call__(self, status: int, *, to_tag: str | None = None, body: bytes = b"", content_type: str | None = None,
                 extra: list[tuple[str, str]] | None = None) -> None: ...


def capability_headers() -> list[tuple[str, str]]:
    """What an OPTIONS answer advertises: Allow, Accept, and Supported when any extension is implemented."""
    headers = [("Allow", ALLOW), ("Accept", ", ".join(ACCEPTED_BODIES))]
    if SUPPORTED_EXTENSIONS:
        headers.append(("Supported", ", ".join(SUPPORTED_EXTENSIONS)))
    return headers


def build_response(req: Request, status: int, *, to_tag: str | None = None, body: bytes = b"",
                   content_type: str | None = None, extra: list[tuple[str, str]] | None = None,
                   source: Address | None = None, reason: str | None = None) -> Response:
    """A response to `req` (RFC 3261 §8.2.6): its Vias (the top one stamped with `received`/`rport` from
    `source`), From, To (with `to_tag` added), Call-ID, CSeq; Record-Route copied into an INVITE's 1xx/2xx.
    `reason`: the reason phrase, when not the usual one of `status`."""
    headers = Headers()
    for i, via in enumerate(req.headers.get_all("Via")):
        if i == 0 and source is not None:
            parsed = req.top_via
            if "rport" in parsed.params:
                parsed.params["rport"] = str(source[1])
                parsed.params["received"] = source[0]
            elif parsed.host != source[0]:
                parsed.params["received"] = source[0]
            via = str(parsed)
        headers.add("Via", via)
    headers.add("From", req.headers.get("From") or "")
    to = req.headers.get("To") or ""
    if to_tag and parse_name_addr(to).tag is None and status > 100:
        to = f"{to};tag={to_tag}"
    headers.add("To", to)
    headers.add("Call-ID", req.call_id)
    headers.add("CSeq", req.headers.get("CSeq") or "")
    if req.method == "INVITE" and 100 < status < 300:
        for rr in req.headers.get_all("Record-Route"):
            headers.add("Record-Route", rr)
    headers.add("Server", USER_AGENT)
    for name, value in extra or []:
        headers.add(name, value)
    if content_type:
        headers.add("Content-Type", content_type)
    return Response(headers, body, status, reason or REASONS.get(status, "Unknown"))


class MessageBuilder:
    """Builds requests and responses with our address (`public_host:public_port`) in Via and Contact."""

    def __init__(self, public_host: str, public_port: int) -> None:
        self.public_host = public_host
        self.public_port = public_port

    def via(self) -> str:
        return f"SIP/2.0/UDP {self.public_host}:{self.public_port};branch={new_branch()};rport"

    def contact(self, user: str) -> str:
        return f"<sip:{user}@{self.public_host}:{self.public_port}>"

    def response(self, req: Request, status: int, *, to_tag: str | None = None, body: bytes = b"",
                 content_type: str | None = None, extra: list[tuple[str, str]] | None = None,
                 source: Address | None = None) -> Response:
        """A response to `req`: see `build_response`."""
        return build_response(req, status, to_tag=to_tag, body=body, content_type=content_type, extra=extra,
                              source=source)

    def invite(self, dialog: Dialog, contact_user: str, offer: bytes, auth: list[tuple[str, str]]) -> Request:
        """The initial INVITE of an outbound call (a new CSeq each time, e.g. when answering a challenge)."""
        headers = Headers()
        headers.add("Via", self.via())
        headers.add("Max-Forwards", "70")
        headers.add("From", str(dialog.local))
        headers.add("To", str(dialog.remote))
        headers.add("Call-ID", dialog.call_id)
        headers.add("CSeq", f"{dialog.next_cseq()} INVITE")
        headers.add("Contact", self.contact(contact_user))
        headers.add("Allow", ALLOW)
        headers.add("User-Agent", USER_AGENT)
        for name, value in auth:
            headers.add(name, value)
        headers.add("Content-Type", "application/sdp")
        return Request(headers, offer, "INVITE", dialog.remote_target)

    def cancel(self, invite: Request) -> Request:
        """RFC 3261 §9.1: same Request-URI, Call-ID, To, From, CSeq number and top Via as the INVITE."""
        headers = invite_companion_headers(invite, "CANCEL")
        headers.add("User-Agent", USER_AGENT)
        return Request(headers, b"", "CANCEL", invite.uri)

    def dialog_headers(self, dialog: Dialog, cseq: str) -> Headers:
        """The headers every in-dialog request starts with (RFC 3261 §12.2.1.1): a fresh Via, the route
        set, the dialog's From/To/Call-ID and `cseq` ("<number> <METHOD>")."""
        headers = Headers()
        headers.add("Via", self.via())
        for route in dialog.route_set:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", str(dialog.local))
        headers.add("To", str(dialog.remote))
        headers.add("Call-ID", dialog.call_id)
        headers.add("CSeq", cseq)
        return headers

    def ack(self, dialog: Dialog, invite_cseq: int) -> Request:
        """The ACK of a 2xx: an in-dialog request with the INVITE's CSeq number (RFC 3261 §13.2.2.4)."""
        headers = self.dialog_headers(dialog, f"{invite_cseq} ACK")
        headers.add("User-Agent", USER_AGENT)
        return Request(headers, b"", "ACK", dialog.remote_target)

    def dialog_request(self, dialog: Dialog, method: str, contact_user: str, *, body: bytes = b"",
                       content_type: str | None = None, extra: list[tuple[str, str]] | None = None) -> Request:
        """An in-dialog request (BYE, REFER, INFO) with the next local CSeq."""
        headers = self.dialog_headers(dialog, f"{dialog.next_cseq()} {method}")
        headers.add("Contact", self.contact(contact_user))
        headers.add("User-Agent", USER_AGENT)
        for name, value in extra or []:
            headers.add(name, value)
        if content_type:
            headers.add("Content-Type", content_type)
        return Request(headers, body, method, dialog.remote_target)

    def sdp(self, rtp: RtpSession, version: int, negotiated: Negotiated | None) -> bytes:
        """Our session description: an offer (every codec) when `negotiated` is None, else the answer to it;
        RTP/SAVP with our a=crypto key when the call is SRTP."""
        if negotiated is None:
            body = build_sdp(address=self.public_host, port=rtp.local_port, session_id=rtp.ssrc, version=version)
        else:
            body = build_sdp(address=self.public_host, port=rtp.local_port, session_id=rtp.ssrc, version=version,
                             payload_types=(negotiated.payload_type,), codec=negotiated.codec,
                             dtmf_payload_type=negotiated.dtmf_payload_type, direction=negotiated.direction)
        return decorate(body, rtp.srtp)
