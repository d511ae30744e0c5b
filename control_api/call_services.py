"""What a call needs from the process it runs in, and nothing more.

The call's modules (`call_session`, `web_calls`, `sip_dispatch`) are built on this instead of the whole
`Runtime`, so they can be made in a test from a database and a registry, and so they never import the module
that starts the server.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from agent_runtime.providers.base import ProviderRegistry
from control_api.live_calls import LiveCalls
from control_api.media_store import MediaStore
from control_api.metrics import Metrics
from control_api.settings import Settings
from control_api.storage import Database
from media.pacing import MediaClock


@dataclass
class CallServices:
    settings: Settings
    db: Database
    clock: MediaClock  # the worker's one 20 ms clock, started
    providers: ProviderRegistry
    metrics: Metrics = field(default_factory=Metrics)
    media: MediaStore | None = None  # uploads during live calls
    calls: LiveCalls = field(default_factory=LiveCalls)
