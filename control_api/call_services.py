"""What a call needs from the process it runs in, and nothing more.

The call's modules (`call_session`, `web_calls`, `sip_dispatch`) are built on this instead of the whole
`Runtime`, so they can be made in a test from a database and a registry, and so they never import the module
that starts the server.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from agent_runtime.providers.base import ProviderRegistry
from control_api.call_admission import CallAdmission
from control_api.cluster.link import ClusterLink
from control_api.cluster.member import generated_member_id
from control_api.live_calls import LiveCalls
from control_api.media_store import MediaStore
from control_api.metrics import Metrics
from control_api.settings import Settings
from control_api.storage import Database
from media.pacing import MediaClock


class AfterCall(Protocol):
    """What runs once a call's record is finished (post-call analysis, `control_api.analysis`)."""

    def schedule(self, call_id: str) -> object:
        """Start the work in the background and return at once."""
        ...


LOCAL_WORKER = "local"  # the worker name of a process that is not a member of a deployment


def worker_name(settings: Settings) -> str:
    """This process's name in call records (`extra_details.worker`): TALKWIRE_MEMBER_ID, else "local" (a member of
    a deployment without one: a name made up for this start)."""
    if settings.member_id:
        return settings.member_id
    return generated_member_id() if settings.redis_url else LOCAL_WORKER


@dataclass
class CallServices:
    settings: Settings
    db: Database
    clock: MediaClock  # the worker's one 20 ms clock, started
    providers: ProviderRegistry
    metrics: Metrics = field(default_factory=Metrics)
    media: MediaStore | None = None  # uploads during live calls
    calls: LiveCalls = field(default_factory=LiveCalls)
    worker: str = ""  # this process's name in call records; default worker_name(settings)
    analysis: AfterCall | None = None  # post-call analysis, scheduled when a call's record is finished
    admission: CallAdmission = field(init=False)  # rate limits, quota and capacity for new calls
    cluster: ClusterLink | None = None  # this process as a member of a deployment (control_api/cluster/wiring.py)

    def __post_init__(self) -> None:
        self.worker = self.worker or worker_name(self.settings)
        self.admission = CallAdmission(self.settings, self.calls, self.metrics)
