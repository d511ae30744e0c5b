"""Outbound phone calls in a deployment: placed on a member, dialed there, followed through the record.

    ClusterOutboundCalls.dial(...)   place (NoRoom: nobody has room) ── record `triggered`, worker = the chosen
                                     member, id = the placement's name ── hand-off to its inbox ── the call id
    ClusterOutboundCalls.wait_ended  the record until it is final: answered or not, and why it ended

It has the shape of `dialer.sip_placer.OutboundCalls`, so the campaign dialer's `SipPlacer` places campaign
calls on any member through it; `POST /calls/create` type "sip" can use `dial` the same way. The chosen member's
`OutboundDialer` sends the INVITE for the existing record (and fills in what only it knows: the caller ID of its
trunk, the SIP Call-ID). A record whose member dies is finished `worker_lost` by the survivors, which ends
`wait_ended` too.
"""
from __future__ import annotations

import asyncio
import uuid

from control_api.cluster.handoff import DialRequest
from control_api.cluster.node import ClusterMember
from control_api.dialer.sip_placer import CallEnd
from control_api.storage import Database
from control_api.storage import calls as call_store
from control_api.storage.calls import FINAL_STATUSES
from media.end_reason import EndReason

POLL_SECONDS = 1.0  # how often wait_ended reads the record


class ClusterOutboundCalls:
    def __init__(self, member: ClusterMember, db: Database, *, poll: float = POLL_SECONDS) -> None:
        self.member = member
        self.db = db
        self.poll = poll

    async def dial(self, *, client_id: str, agent_id: str, to_number: str, name: str | None = None,
                   from_number: str | None = None, ring_timeout: float | None = None,
                   prospect_id: str | None = None, campaign_id: str | None = None) -> str:
        """Create the call's record on the least-loaded member and hand the call to it; the call id at once."""
        call_id = str(uuid.uuid4())
        placement = await self.member.place(call_id)
        try:
            await call_store.create_call(
                self.db, client_id=client_id, agent_id=agent_id, type="sip_call", direction="outbound",
                status="triggered", prospect_id=prospect_id, prospect_name=name, phone_from=from_number,
                phone_to=to_number, campaign_id=campaign_id, call_id=call_id, worker=placement.member_id)
        except BaseException:
            await self.member.placer.cancel(placement)
            raise
        await self.member.hand_off(placement, DialRequest(
            call_id=call_id, client_id=client_id, agent_id=agent_id, to_number=to_number, from_number=from_number,
            name=name, ring_timeout=ring_timeout, prospect_id=prospect_id, campaign_id=campaign_id,
            reservation=placement.reservation))
        return call_id

    async def wait_ended(self, call_id: str) -> CallEnd:
        while True:
            call = await call_store.get_call(self.db, call_id)
            if call is None:
                raise LookupError(f"no call {call_id}")
            if call.status in FINAL_STATUSES:
                return CallEnd(answered=call.answered_at is not None, end_reason=EndReason.parse(call.end_reason))
            await asyncio.sleep(self.poll)
