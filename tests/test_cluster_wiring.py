"""The seams between the call modules and the deployment (control_api/cluster/wiring.py), on their own: one
process is untouched; a member admits, refuses and dials as the deployment needs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.asyncio import Redis

from control_api.call_admission import CallAdmission
from control_api.call_services import LOCAL_WORKER, CallServices, worker_name
from control_api.cluster.handoff import DialRequest
from control_api.cluster.keys import Keyspace
from control_api.cluster.link import ClusterLink
from control_api.cluster.wiring import ClusterAdmission, MemberDialer, inbound_refusal, join, web_call_spot
from control_api.errors import ApiError
from control_api.live_calls import LiveCalls
from control_api.metrics import Metrics
from control_api.settings import Settings
from control_api.storage import Database
from media.pacing import MediaClock


@dataclass
class FakeSip:
    local_address: tuple[str, int] = ("127.0.0.1", 5099)
    dialed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def dial_existing(self, call_id: str, **fields: Any) -> None:
        self.dialed.append((call_id, fields))


def services_of(settings: Settings, db: Database) -> CallServices:
    return CallServices(settings=settings, db=db, clock=MediaClock(), providers=None,  # type: ignore[arg-type]
                        metrics=Metrics())


def test_the_worker_name() -> None:
    assert worker_name(Settings()) == LOCAL_WORKER
    assert worker_name(Settings(member_id="m7", redis_url="redis://x")) == "m7"
    generated = worker_name(Settings(redis_url="redis://x"))
    assert generated != LOCAL_WORKER and generated != worker_name(Settings(redis_url="redis://x"))


async def test_one_process_is_untouched(settings: Settings, db: Database) -> None:
    services = services_of(settings, db)
    async with join(services, FakeSip()) as link:
        assert link is None and services.cluster is None
        assert type(services.admission) is CallAdmission
        spot = await web_call_spot(services)
        assert (spot.call_id, spot.worker, spot.base_url) == (None, LOCAL_WORKER, settings.base_url)
        assert inbound_refusal(services) is None


@dataclass
class StubMember:
    """What the wiring reads of a ClusterMember, without Redis behind it."""

    id: str = "w1"
    draining: bool = False
    healthy: bool = True
    redis: Redis = field(default_factory=lambda: Redis.from_url("redis://127.0.0.1:1/0"))
    keys: Keyspace = field(default_factory=Keyspace)


async def test_a_member_admits_refuses_and_dials(settings: Settings, db: Database) -> None:
    services = services_of(settings.model_copy(update={"max_calls": 1}), db)
    member = StubMember()
    services.cluster = ClusterLink(member, None, None)  # type: ignore[arg-type]
    admission = ClusterAdmission(services.admission, member)  # type: ignore[arg-type]
    services.calls.reserve("someone")  # this member full: creation still passes (placement decides) …
    admission.check_room("c1", reserving=False)
    with pytest.raises(ApiError) as full:  # … the call connecting here does not
        admission.check_room("c1", reserving=True)
    assert full.value.code == "OVER_CAPACITY"

    assert inbound_refusal(services) is None
    member.draining = True
    assert inbound_refusal(services) == 503
    member.draining, member.healthy = False, False  # Redis out of reach for longer than the heartbeat TTL
    assert inbound_refusal(services) == 503
    with pytest.raises(ApiError) as cut_off:
        await admission.admit_create(client_id="c1", key_id="k", publishable=False, client_ip="1.2.3.4")
    assert (cut_off.value.status, cut_off.value.code) == (503, "OVER_CAPACITY")
    assert cut_off.value.headers and int(cut_off.value.headers["Retry-After"]) >= 1
    await member.redis.aclose()

    sip = FakeSip()
    await MemberDialer(sip).dial(DialRequest(call_id="c9", client_id="cl", agent_id="a", to_number="+1555"))
    assert sip.dialed == [("c9", {"client_id": "cl", "agent_id": "a", "to_number": "+1555", "name": None,
                                  "from_number": None, "ring_timeout": None})]
    with pytest.raises(RuntimeError):
        await MemberDialer(None).dial(DialRequest(call_id="c9", client_id="cl", agent_id="a", to_number="+1"))


def test_live_calls_by_leg() -> None:
    calls = LiveCalls()
    assert calls.by_leg() == {}
