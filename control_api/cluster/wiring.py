"""Where the server's call modules meet the deployment: one small call from each, all here.

    Runtime.open          join(services, sip)            open the member (TALKWIRE_REDIS_URL), drain on shutdown
    POST /calls/create    web_call_spot(services)        web: the member placed on (its worker_url, its name)
                          ClusterAdmission               Redis lost → 503; rate limits deployment-wide
    POST /calls/{id}/end  forward_to_owner(...)          a call live on another member: sent on to it
    CallSession           call_started / call_ended      the call directory and the published load
    SipDispatcher.dial    services.cluster.outbound      outbound phone calls placed on a member (its inbox)
                          MemberDialer                   this member dials what was placed on it
    SipDispatcher.resolve inbound_refusal(services)      503 while draining, full or cut off (Kamailio tries
                                                         the next member)

Every function is a no-op (or the one-process answer) when `services.cluster` is None.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import httpx
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from control_api.call_admission import CAPACITY_RETRY_AFTER, CallAdmission
from control_api.call_services import CallServices
from control_api.cluster.forwarding import forward, was_forwarded
from control_api.cluster.handoff import DialRequest
from control_api.cluster.limiter import RedisLimiter
from control_api.cluster.link import ClusterLink
from control_api.cluster.member import MemberState
from control_api.cluster.node import ClusterMember
from control_api.cluster.outbound import ClusterOutboundCalls
from control_api.cluster.placement import NoRoom, Placement
from control_api.errors import ApiError
from control_api.limits import retry_after_header
from control_api.storage.models import Call

log = logging.getLogger(__name__)


class ExistingCallDialer(Protocol):
    """The SIP dispatch's side of a hand-off: send the INVITE for a call whose record exists."""

    @property
    def local_address(self) -> tuple[str, int]: ...

    async def dial_existing(self, call_id: str, *, client_id: str, agent_id: str, to_number: str,
                            name: str | None = None, from_number: str | None = None,
                            ring_timeout: float | None = None) -> None: ...


class MemberDialer:
    """This member's inbox reader dials through it: the INVITE for a call placed here by any member."""

    def __init__(self, sip: ExistingCallDialer | None) -> None:
        self.sip = sip

    async def dial(self, request: DialRequest) -> None:
        if self.sip is None:
            raise RuntimeError(f"call {request.call_id}: placed on a member without SIP")
        await self.sip.dial_existing(request.call_id, client_id=request.client_id, agent_id=request.agent_id,
                                     to_number=request.to_number, name=request.name,
                                     from_number=request.from_number, ring_timeout=request.ring_timeout)


class ClusterAdmission(CallAdmission):
    """Admission on a member: rate limits from buckets the deployment shares; `POST /calls/create` refused while
    Redis is out of reach (nobody could place or find the call). The member's own capacity is checked when a
    call connects to it, not at creation: the placement picks a member with room, perhaps another one."""

    def __init__(self, base: CallAdmission, member: ClusterMember) -> None:
        super().__init__(base.settings, base.calls, base.metrics, RedisLimiter(member.redis, member.keys))
        self.member = member

    async def admit_create(self, *, client_id: str, key_id: str, publishable: bool, client_ip: str) -> None:
        if not self.member.healthy:
            self.metrics.refused("over_capacity")
            raise ApiError(503, "OVER_CAPACITY", "This server cannot reach the rest of its deployment; try again "
                           "shortly", {"Retry-After": retry_after_header(CAPACITY_RETRY_AFTER)})
        await super().admit_create(client_id=client_id, key_id=key_id, publishable=publishable,
                                   client_ip=client_ip)

    def check_room(self, client_id: str, *, reserving: bool) -> None:
        if reserving:  # a call connecting here; at creation the placement decides
            super().check_room(client_id, reserving=True)


def calls_by_leg(services: CallServices) -> Callable[[], dict[str, int]]:
    return services.calls.by_leg


def sip_address(public: str | None, sip: ExistingCallDialer | None) -> str | None:
    """host:port other parts (Kamailio's list) know this member's SIP by."""
    if sip is None:
        return None
    host, port = sip.local_address
    return public if public and ":" in public else f"{public or host}:{port}"


@asynccontextmanager
async def join(services: CallServices, sip: ExistingCallDialer | None) -> AsyncIterator[ClusterLink | None]:
    """With TALKWIRE_REDIS_URL: this process as a member for the block (services.cluster), draining its live
    calls (up to TALKWIRE_DRAIN_TIMEOUT) when the block ends. Without it: nothing."""
    settings = services.settings
    if not settings.redis_url:
        yield None
        return
    async with ClusterMember.open(settings, services.db, member_id=services.worker, url=settings.base_url,
                                  sip=sip_address(settings.sip_public_address, sip), load=calls_by_leg(services),
                                  dialer=MemberDialer(sip) if sip is not None else None) as member, \
            httpx.AsyncClient() as http:
        link = ClusterLink(member, ClusterOutboundCalls(member, services.db), http, settings.cluster_secret)
        services.cluster = link
        services.admission = ClusterAdmission(services.admission, member)
        try:
            yield link
            drained = await member.drain(lambda: len(services.calls), settings.drain_timeout)
            if not drained:
                log.warning("drain: %d call(s) still live after %.0f s; ending them", len(services.calls),
                            settings.drain_timeout)
        finally:
            link.closed = True
            await link.settle()


# ---- new calls ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Spot:
    """Where a new web call runs: its id (None: the database makes one), the member's name and URL."""

    call_id: str | None
    worker: str
    base_url: str
    placement: Placement | None = None


async def web_call_spot(services: CallServices) -> Spot:
    """This process, or (a member) the least-loaded member with room, reserved; NoRoom → 503 OVER_CAPACITY."""
    link = services.cluster
    if link is None:
        return Spot(None, services.worker, services.settings.base_url)
    call_id = str(uuid.uuid4())
    try:
        placement = await link.member.place(call_id)
    except (NoRoom, RedisError) as exc:
        services.metrics.refused("over_capacity")
        raise ApiError(503, "OVER_CAPACITY", "Every server of this deployment is at its call capacity; "
                       "try again shortly", {"Retry-After": retry_after_header(NoRoom.retry_after)}) from exc
    return Spot(call_id, placement.member_id, placement.url, placement)


async def cancel_spot(services: CallServices, spot: Spot) -> None:
    """The call will not start (its record could not be written): give the place back."""
    if services.cluster is not None and spot.placement is not None:
        try:
            await services.cluster.member.placer.cancel(spot.placement)
        except RedisError as exc:  # it runs out by itself
            log.warning("placement %s not cancelled: %s", spot.placement.reservation, exc)


def inbound_refusal(services: CallServices) -> int | None:
    """503 for an inbound INVITE this member must not take (draining, cut off from Redis; at TALKWIRE_MAX_CALLS
    is the resolver's own check): Kamailio then tries the next member. None: take it (always, in one process)."""
    link = services.cluster
    if link is None:
        return None
    if link.member.draining or not link.member.healthy:
        services.metrics.refused("over_capacity")
        return 503
    return None


# ---- live calls -------------------------------------------------------------------------------------

def call_started(services: CallServices, call_id: str) -> None:
    """A call began here: in the directory, its placement (named by the call id) taken up."""
    link = services.cluster
    if link is not None and not link.closed:
        link.spawn(link.member.call_started(call_id, reservation=call_id))


def call_ended(services: CallServices, call_id: str) -> None:
    link = services.cluster
    if link is not None and not link.closed:
        link.spawn(link.member.call_ended(call_id))


async def owner_of(link: ClusterLink, call: Call) -> MemberState | None:
    """The live member that runs `call`: the directory's, else the one its record names (a phone call still
    ringing is not in the directory yet)."""
    owner = await link.member.directory.owner(call.id)
    if owner is None:
        named = (call.extra_details or {}).get("worker")
        if isinstance(named, str) and named:
            owner = await link.member.directory.state_of(named)
    return owner if owner is not None and owner.id != link.member.id else None


async def forward_to_owner(services: CallServices, request: Request, call: Call) -> Response | None:
    """The owner's answer to this request, when `call` is live on another member; None otherwise."""
    link = services.cluster
    if link is None or was_forwarded(request.headers):
        return None
    try:
        owner = await owner_of(link, call)
        if owner is None:
            return None
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        answer = await forward(link.http, owner, link.member.id, request.method, path,
                               headers=request.headers, body=await request.body())
    except (RedisError, httpx.HTTPError) as exc:
        log.warning("call %s: could not reach the member running it (%s)", call.id, exc)
        return None
    return Response(answer.content, status_code=answer.status_code,
                    media_type=answer.headers.get("content-type"))
