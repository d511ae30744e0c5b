"""What the call modules of a member need of the deployment: the member, its outbound calls, a client to the
other members. `CallServices.cluster` holds one while the process is a member (None for one process);
control_api/cluster/wiring.py makes it and is what the call modules call.
"""
from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx

from control_api.cluster.node import ClusterMember
from control_api.cluster.outbound import ClusterOutboundCalls


@dataclass
class ClusterLink:
    member: ClusterMember
    outbound: ClusterOutboundCalls  # outbound phone calls (API or campaign dialer) placed on any member
    http: httpx.AsyncClient  # requests forwarded to other members
    secret: str | None = None  # TALKWIRE_CLUSTER_SECRET
    closed: bool = False  # the member has left: call starts and ends are no longer published
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a Redis step off the call's path (a slow or lost Redis must not delay media)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for the steps still under way."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
