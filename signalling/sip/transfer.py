"""Blind transfer by REFER (RFC 3515): we REFER the caller to the target, follow the implicit subscription's
NOTIFYs (message/sipfrag status lines), and hang up our side once the target answered.

Only outbound REFER: an inbound REFER (the far end asking *us* to call someone) is answered 405, and REFER is not
in our `Allow` (see builder.py and docs/sip.md).
"""
from __future__ import annotations

import asyncio
from typing import Any

from media.end_reason import EndReason
from media.leg import TransferFailed
from signalling.sip.builder import Reply
from signalling.sip.calls import CallTable
from signalling.sip.in_dialog import InDialog
from signalling.sip.leg import SipLeg
from signalling.sip.message import Request, is_digits, parse_uri
from signalling.sip.transaction import TransactionTimeout

Progress = tuple[int | None, bool]  # (sipfrag status, subscription terminated)
TARGET_ANSWER_SECONDS = 30.0  # how long the transfer target has to answer (the final NOTIFY)


def sipfrag_status(req: Request) -> int | None:
    """The status code of a NOTIFY's message/sipfrag body ("SIP/2.0 200 OK"), or None."""
    if req.content_type != "message/sipfrag" or not req.body.strip():
        return None
    parts = req.body.decode("utf-8", "replace").splitlines()[0].split()
    if len(parts) >= 2 and parts[0] == "SIP/2.0" and is_digits(parts[1]):
        return int(parts[1])
    return None


class Transfers:
    def __init__(self, in_dialog: InDialog, calls: CallTable) -> None:
        self.in_dialog = in_dialog
        self.calls = calls
        self._progress: dict[str, asyncio.Queue[Progress]] = {}  # by Call-ID, while a transfer runs

    async def transfer(self, leg: SipLeg, target: str) -> None:
        if leg.answered_at is None or leg.ended.done():
            raise TransferFailed("the call is not up")
        if target.startswith(("sip:", "sips:", "tel:")):
            uri = target
        elif leg.trunk is not None:
            uri = leg.trunk.uri_for(target)
        else:
            uri = f"sip:{target}@{parse_uri(leg.dialog.remote_target).hostport}"
        queue: asyncio.Queue[Progress] = asyncio.Queue()
        self._progress[leg.call_id] = queue
        try:
            try:
                resp = await self.in_dialog.request(
                    leg, "REFER", extra=[("Refer-To", f"<{uri}>"), ("Referred-By", f"<{leg.dialog.local.uri}>")])
            except TransactionTimeout as exc:
                raise TransferFailed("no answer to REFER", 408) from exc
            if resp.status >= 300:
                raise TransferFailed(f"REFER refused: {resp.status} {resp.reason}", resp.status)
            await self._follow(leg, queue)
        finally:
            if self._progress.get(leg.call_id) is queue:
                del self._progress[leg.call_id]

    async def _follow(self, leg: SipLeg, queue: asyncio.Queue[Progress]) -> None:
        """Wait for the NOTIFY that says how the transfer went; end our side on success."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TARGET_ANSWER_SECONDS
        while True:
            remaining = deadline - loop.time()
            ended = asyncio.ensure_future(asyncio.shield(leg.ended))
            got = asyncio.ensure_future(queue.get())
            waiters: set[asyncio.Future[Any]] = {ended, got}
            done, _ = await asyncio.wait(waiters, timeout=max(0.0, remaining),
                                         return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            if got not in done:
                got.cancel()
                if leg.ended.done():
                    raise TransferFailed(f"call ended during the transfer ({leg.ended.result()})")
                raise TransferFailed("transfer target did not answer in time")
            status, terminated = got.result()
            if status is not None and 200 <= status < 300:
                self.in_dialog.bye(leg, EndReason.TRANSFERRED)
                return
            if status is not None and status >= 300:
                raise TransferFailed(f"transfer failed: {status}", status)
            if terminated:
                raise TransferFailed("transfer subscription ended without a final status")

    def on_notify(self, req: Request, reply: Reply) -> None:
        leg = self.calls.dialog_leg(req)
        if leg is None:
            reply(481)
            return
        reply(200)
        queue = self._progress.get(leg.call_id)
        event = (req.headers.get("Event") or "").split(";")[0].strip().lower()
        if queue is None or event != "refer":
            return
        state = (req.headers.get("Subscription-State") or "").split(";")[0].strip().lower()
        queue.put_nowait((sipfrag_status(req), state == "terminated"))
