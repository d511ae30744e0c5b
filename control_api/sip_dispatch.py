"""Phone calls on the server: the SIP user agent of this worker, joined to agents and call records.

    Runtime.open ──► SipDispatcher.start(services)     (TALKWIRE_SIP_BIND; "off" runs no SIP at all)
    POST /calls/create type "sip" ──► dispatcher.dial(...) ──► record `triggered`, INVITE sent
        answered ──► `in-progress`, start_call(leg, direction="outbound")
        not answered ──► `failed` with extra_details.outcome / sip_status, whatever the reason
        ended ──► `completed` or `failed` by the end reason (media.end_reason), with outcome, sip_status, duration
    INVITE to one of our numbers ──► resolve(invite): the To user, else a Diversion user (sip_routing); unknown
        (or its agent deleted) 404, number or agent not active 480, else the number's agent; the INVITE's X-
        headers go to the record (extra_details.sip_headers) and to the agent as a system message
        ──► record `in-progress`, start_call(leg, direction="inbound") (the agent's inbound welcome)

Call records of phone calls: type `sip_call`, `provider_call_id` = the SIP Call-ID, `phone_from`/`phone_to`,
and `extra_details` = {"outcome", "sip_status", "duration"} (duration: whole seconds from the SIP answer to the
end of the dialog; the record's own `duration` runs from the answer to when the record was finished, a few
hundred milliseconds more at most). See docs/sip.md, "The control API side".
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from control_api.call_agent import AgentRecord
from control_api.call_services import CallServices
from control_api.call_session import CallSession, Direction, start_call
from control_api.cluster.wiring import inbound_refusal
from control_api.db_retry import retrying
from control_api.dialer.sip_placer import CallEnd
from control_api.sip_routing import InviteFacts, dialled_candidates
from control_api.sip_trunking import Trunking, stream_options
from control_api.storage import calls as call_store
from control_api.storage.agents import load_agent
from control_api.storage.models import SipTrunk
from control_api.storage.phone_numbers import find_dialled_number
from control_api.storage.sip_trunks import trunk_of_number
from media.end_reason import EndReason
from signalling.sip import (
    CallResult,
    Decision,
    InboundInvite,
    SipLeg,
    SipUserAgent,
    Trunk,
    TrunkError,
    parse_hostport,
)

log = logging.getLogger(__name__)

SIP_OFF = "off"


class SipUnavailable(Exception):
    """An outbound call cannot be placed (SIP is off, no trunk, a trunk we cannot use); the message says why."""


@dataclass(frozen=True, slots=True)
class InboundRoute:
    """What the resolver decided for an inbound call: whose number it is and which agent answers."""

    client_id: str
    agent_id: str
    number: str
    facts: InviteFacts = InviteFacts()  # the INVITE's X- headers and the Diversion that routed it


def parse_bind(text: str) -> tuple[str, int]:
    """TALKWIRE_SIP_BIND → (host, port); port 0 (any free port, as the tests use) is allowed here."""
    host, sep, port = text.strip().rpartition(":")
    if sep and port == "0":
        return parse_hostport(host)[0], 0
    return parse_hostport(text)


def stored_trunk(row: SipTrunk) -> Trunk:
    return Trunk(row.host, row.port or 5060, row.username or None, row.password or None,
                 transport=(row.transport or "udp").lower(), srtp=bool(row.srtp))


# The outcomes of phone calls (extra_details.outcome); see docs/sip.md.
OUTCOMES = frozenset({EndReason.BUSY, EndReason.NO_ANSWER, EndReason.REJECTED, EndReason.AUTH_FAILED,
                      EndReason.NETWORK_ERROR, EndReason.NO_USABLE_CODEC, EndReason.REMOTE_HANGUP,
                      EndReason.AGENT_HANGUP, EndReason.TRANSFERRED})


def call_details(leg: SipLeg, reason: str) -> dict[str, Any]:
    """`extra_details` of a phone call that has ended (or never answered). Our own reasons for hanging up
    (silence_timeout, server_shutdown, …) are the outcome `agent_hangup`; the record's end_reason keeps them."""
    outcome = leg.outcome or reason
    return {
        "outcome": str(outcome) if outcome in OUTCOMES else str(EndReason.AGENT_HANGUP),
        "sip_status": leg.sip_status,
        "duration": round(leg.duration),
    }


class SipDispatcher:
    def __init__(self, services: CallServices) -> None:
        self.services = services
        self.ua: SipUserAgent | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ringing: dict[str, tuple[SipLeg, asyncio.Task[None]]] = {}  # outbound calls not yet answered
        self._ends: dict[str, asyncio.Future[CallEnd]] = {}  # campaign calls (dial with campaign_id) until waited
        self.trunking = Trunking(services.settings, services.db, services.metrics)  # admission, registrations

    @classmethod
    async def start(cls, services: CallServices) -> SipDispatcher | None:
        """Bind the worker's SIP user agent (None when TALKWIRE_SIP_BIND is "off")."""
        settings = services.settings
        if settings.sip_bind.strip().lower() == SIP_OFF:
            return None
        dispatcher = cls(services)
        bind = parse_bind(settings.sip_bind)
        try:
            dispatcher.ua = await SipUserAgent.start(
                bind=bind,
                public_address=settings.sip_public_address,
                rtp_ports=(settings.rtp_port_min, settings.rtp_port_max),
                clock=services.clock,
                resolver=dispatcher.resolve,
                on_incoming=dispatcher.on_incoming,
                admission=dispatcher.trunking.admission,
                streams=stream_options(settings),
            )
        except OSError as exc:
            raise OSError(exc.errno, f"cannot bind the SIP user agent to {bind[0]}:{bind[1]} ({exc.strerror}); "
                                     "set TALKWIRE_SIP_BIND to a free address, or to 'off' to run without SIP") from exc
        await dispatcher.trunking.start(dispatcher.ua)
        log.info("SIP user agent on %s:%s", *dispatcher.ua.local_address)
        return dispatcher

    @property
    def local_address(self) -> tuple[str, int]:
        assert self.ua is not None
        return self.ua.local_address

    async def close(self) -> None:
        """Hang up the calls still ringing (their records fail with the outcome), close the sockets."""
        await self.trunking.close()
        if self.ua is not None:
            await self.ua.close()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.services.calls.end_all(EndReason.SERVER_SHUTDOWN)  # calls answered while shutting down

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- outbound -------------------------------------------------------------------------------------

    async def trunk_for(self, client_id: str, from_number: str | None) -> Trunk:
        """`from_number`'s stored trunk when it has one, else the default trunk (TALKWIRE_SIP_TRUNK)."""
        if from_number is not None:
            row = await trunk_of_number(self.services.db, client_id, from_number)
            if row is not None:
                return stored_trunk(row)
        uri = self.services.settings.sip_trunk
        if not uri:
            raise SipUnavailable("No SIP trunk to dial through: set TALKWIRE_SIP_TRUNK, or dial from a number "
                                 "imported on a trunk (sip_data.from_number)")
        try:
            return Trunk.parse(uri)
        except TrunkError as exc:
            raise SipUnavailable(f"TALKWIRE_SIP_TRUNK is not usable: {exc}") from None

    async def dial(self, *, client_id: str, agent_id: str, to_number: str, name: str | None = None,
                   from_number: str | None = None, ring_timeout: float | None = None,
                   prospect_id: str | None = None, campaign_id: str | None = None) -> str:
        """Create the call record (`triggered`), send the INVITE and return the call id at once; the call
        goes on in the background. Raises SipUnavailable when it cannot dial: before anything is stored (SIP
        off, no usable trunk), or with the record failed as `network_error` (no free RTP port)."""
        if self.ua is None or self.ua.closed:
            raise SipUnavailable("SIP is off on this server (TALKWIRE_SIP_BIND=off)")
        trunk = await self.trunk_for(client_id, from_number)
        if self.services.cluster is not None:  # a member of a deployment: placed on a member, which dials
            return await self.services.cluster.outbound.dial(
                client_id=client_id, agent_id=agent_id, to_number=to_number, name=name, from_number=from_number,
                ring_timeout=ring_timeout, prospect_id=prospect_id, campaign_id=campaign_id)
        caller = from_number or trunk.default_caller_id
        db = self.services.db
        call = await call_store.create_call(
            db, client_id=client_id, agent_id=agent_id, type="sip_call", direction="outbound",
            status="triggered", prospect_id=prospect_id, prospect_name=name, phone_from=caller,
            phone_to=to_number, campaign_id=campaign_id, worker=self.services.worker)
        await self._invite(call.id, client_id, agent_id, to_number, trunk, caller, name, ring_timeout, campaign_id)
        return call.id

    async def dial_existing(self, call_id: str, *, client_id: str, agent_id: str, to_number: str,
                            name: str | None = None, from_number: str | None = None,
                            ring_timeout: float | None = None) -> None:
        """Send the INVITE for a call whose record exists (`triggered`: placed on this member of a deployment by
        any member, control_api/cluster/). A call that cannot be dialed here fails as `network_error`."""
        db = self.services.db
        try:
            if self.ua is None or self.ua.closed:
                raise SipUnavailable("SIP is off on this member (TALKWIRE_SIP_BIND=off)")
            trunk = await self.trunk_for(client_id, from_number)
        except SipUnavailable as exc:
            log.error("call %s: cannot dial %s: %s", call_id, to_number, exc)
            reason = EndReason.NETWORK_ERROR
            await call_store.finish_call(db, call_id, end_reason=reason, status="failed",
                                         extra_details={"outcome": str(reason), "sip_status": None, "duration": 0})
            return
        caller = from_number or trunk.default_caller_id
        if caller != from_number:
            await call_store.update_call(db, call_id, phone_from=caller)
        try:
            await self._invite(call_id, client_id, agent_id, to_number, trunk, caller, name, ring_timeout, None)
        except SipUnavailable as exc:  # recorded on the call
            log.error("call %s: %s", call_id, exc)

    async def _invite(self, call_id: str, client_id: str, agent_id: str, to_number: str, trunk: Trunk,
                      caller: str | None, name: str | None, ring_timeout: float | None,
                      campaign_id: str | None) -> None:
        """Send the INVITE of the call `call_id` (its record `triggered`) and follow the call in the background."""
        assert self.ua is not None
        db = self.services.db
        timeout = ring_timeout if ring_timeout is not None else self.services.settings.sip_ring_timeout
        try:
            leg = await self.ua.dial(to_number, trunk, from_number=caller, display_name=name,
                                     ring_timeout=timeout, context={"call_id": call_id})
        except OSError as exc:  # no free RTP port
            log.error("call %s: cannot dial %s: %s", call_id, to_number, exc)
            reason = EndReason.NETWORK_ERROR
            await call_store.finish_call(db, call_id, end_reason=reason, status="failed",
                                         extra_details={"outcome": str(reason), "sip_status": None, "duration": 0})
            raise SipUnavailable(f"The SIP user agent cannot place a call now: {exc}") from None
        await call_store.update_call(db, call_id, provider_call_id=leg.call_id)
        if campaign_id is not None:  # the dialer waits for its end (wait_ended)
            self._ends[call_id] = asyncio.get_running_loop().create_future()
        task = self._spawn(self._follow_outbound(call_id, client_id, agent_id, leg), f"sip-call:{call_id}")
        self._ringing[call_id] = (leg, task)
        task.add_done_callback(lambda _: self._ringing.pop(call_id, None))

    async def wait_ended(self, call_id: str) -> CallEnd:
        """When a campaign call placed by `dial(campaign_id=…)` is over: whether it was answered and why it
        ended. KeyError for another call (or one already waited for)."""
        try:
            return await asyncio.shield(self._ends[call_id])
        finally:
            self._ends.pop(call_id, None)

    def _ended(self, call_id: str, end: CallEnd) -> None:
        future = self._ends.get(call_id)
        if future is not None and not future.done():
            future.set_result(end)

    def ringing(self, call_id: str) -> bool:
        """Whether `call_id` is an outbound call of this process still ringing (or being set up)."""
        return call_id in self._ringing

    async def hang_up_ringing(self, call_id: str, reason: EndReason) -> None:
        """CANCEL a ringing outbound call (a call answered meanwhile is hung up) and wait until its record is
        finished or its conversation has started."""
        found = self._ringing.get(call_id)
        if found is None:
            return
        leg, task = found
        await leg.hangup(reason)
        await asyncio.wait([task])
        live = self.services.calls.get(call_id)
        if live is not None:
            await live.finished()

    async def _follow_outbound(self, call_id: str, client_id: str, agent_id: str, leg: SipLeg) -> None:
        db = self.services.db
        try:
            result: CallResult = await leg.answered
            if not result.answered:
                await self._fail(call_id, leg, result.outcome)
                self._ended(call_id, CallEnd(False, EndReason.parse(result.outcome) or EndReason.ERROR))
                return
            await retrying(f"call {call_id}: answered", lambda: call_store.set_status(db, call_id, "in-progress"))
            agent = await load_agent(db, client_id, agent_id)
            if agent is None:  # deleted (with this record) while the phone rang
                await leg.hangup(EndReason.AGENT_DELETED)
                self._ended(call_id, CallEnd(True, EndReason.AGENT_DELETED))
                return
            session = await self._start_call(call_id, client_id, agent, leg, "outbound")
            if session.task is not None:
                session.task.add_done_callback(
                    lambda _: self._ended(call_id, CallEnd(True, session.end_reason or EndReason.ERROR)))
        except LookupError:  # the record went with its agent (deleting an agent deletes its calls)
            if not leg.ended.done():
                await leg.hangup(EndReason.AGENT_DELETED)
            self._ended(call_id, CallEnd(False, EndReason.AGENT_DELETED))
        except Exception:
            log.exception("call %s: could not follow the outbound call", call_id)
            if not leg.ended.done():
                await leg.hangup(EndReason.ERROR)
            await self._fail(call_id, leg, EndReason.ERROR)
            self._ended(call_id, CallEnd(False, EndReason.ERROR))
        finally:  # a campaign call is never left unanswered for the dialer (no-op once its end is known)
            if self.services.calls.get(call_id) is None:
                self._ended(call_id, CallEnd(False, EndReason.ERROR))

    async def _fail(self, call_id: str, leg: SipLeg, outcome: str) -> None:
        """A call that was never answered: `failed`, whatever the reason (even our own hang-up while it rang)."""
        await retrying(f"call {call_id}: not answered", lambda: call_store.finish_call(
            self.services.db, call_id, end_reason=outcome, status="failed", extra_details=call_details(leg, outcome)))
        self.services.metrics.calls.labels(leg.kind, "failed", outcome).inc()

    async def _start_call(self, call_id: str, client_id: str, agent: AgentRecord, leg: SipLeg,
                          direction: Direction) -> CallSession:
        return await start_call(self.services, leg, call_id=call_id, client_id=client_id, agent=agent,
                         direction=direction, details=lambda reason: call_details(leg, reason))

    # ---- inbound --------------------------------------------------------------------------------------

    async def resolve(self, invite: InboundInvite) -> Decision:
        """Number → agent: 404 for a number we do not have (or one no agent answers), 480 for a number or
        agent that is not active, 503 when this process is at TALKWIRE_MAX_CALLS."""
        refusal = inbound_refusal(self.services)  # a member of a deployment draining or cut off: 503
        if refusal is not None:
            return Decision.reject(refusal)
        for variants, diverted in dialled_candidates(invite):  # the To user, then the Diversion users
            dialled = await find_dialled_number(self.services.db, variants)
            if dialled is None or dialled.agent is None or dialled.agent.deleted_at is not None:
                continue
            number, agent = dialled.number, dialled.agent
            if not number.is_active or not agent.active:
                return Decision.reject(480)
            cap = self.services.settings.max_calls
            if cap and self.services.calls.occupied >= cap:  # TALKWIRE_MAX_CALLS, as for web calls
                self.services.metrics.refused("over_capacity")
                return Decision.reject(503)
            return Decision.accept(InboundRoute(number.client_id, agent.id, number.number,
                                                InviteFacts.of(invite, diverted)))
        return Decision.reject(404)

    async def on_incoming(self, leg: SipLeg) -> None:
        route: InboundRoute = leg.context
        db = self.services.db
        try:
            agent = await load_agent(db, route.client_id, route.agent_id)
            if agent is None:
                await leg.hangup(EndReason.AGENT_DELETED)
                return
            call = await call_store.create_call(
                db, client_id=route.client_id, agent_id=route.agent_id, type="sip_call", direction="inbound",
                status="in-progress", prospect_name=leg.display_name, phone_from=leg.remote_number or None,
                phone_to=route.number, provider_call_id=leg.call_id, worker=self.services.worker,
                details=route.facts.details())
            session = await self._start_call(call.id, route.client_id, agent, leg, "inbound")
            context = route.facts.context_message()
            if context is not None:
                session.conversation.add_context(context)
        except Exception:
            log.exception("inbound call %s: could not start the agent", leg.call_id)
            if not leg.ended.done():
                await leg.hangup(EndReason.ERROR)
