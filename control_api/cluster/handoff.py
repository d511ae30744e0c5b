"""Hand-off of an outbound phone call to the member chosen to dial it, through that member's Redis inbox.

    placing member: record created (extra_details.worker = chosen member) ── hand_off(...) ── XADD inbox:{member}
    chosen member:  Inbox.run() ── XREADGROUP (its own unacknowledged entries first, after a restart)
                      ── SET dialed:{call_id} NX ── first time: OutboundDialer.dial(request) ── XACK

Delivery is at least once (an entry read but not acknowledged is read again), dialing at most once: the call id
is the hand-off's identity, and only the reader that sets `dialed:{call_id}` first dials. A retried hand-off or
a re-read entry finds the mark and is only acknowledged. A member that dies before dialing leaves the call's
record open under its name; the survivors then mark it `failed` / `worker_lost` (control_api/cluster/lost.py).
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass
from typing import Protocol, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from control_api.cluster.keys import INBOX_GROUP, Keyspace

log = logging.getLogger(__name__)

DIALED_MARK_SECONDS = 7 * 24 * 3600  # how long a dialed call id is remembered (far beyond any retry)
INBOX_MAX_ENTRIES = 10_000  # an inbox keeps at most about this many entries (acknowledged ones go first)

# XREADGROUP's answer (RESP2) on a client that decodes replies (decode_responses=True, as ClusterMember opens it):
# [(stream, [(entry id, {field: value}), ...]), ...]
StreamReplies = list[tuple[str, list[tuple[str, dict[str, str]]]]]


@dataclass(frozen=True, slots=True)
class DialRequest:
    """An outbound phone call whose record exists (`triggered`), to be dialed by the member it was placed on;
    the fields are those of `SipDispatcher.dial`."""

    call_id: str
    client_id: str
    agent_id: str
    to_number: str
    from_number: str | None = None
    name: str | None = None
    ring_timeout: float | None = None
    prospect_id: str | None = None
    campaign_id: str | None = None
    reservation: str | None = None  # the placement's reservation, taken up when the dial starts

    def encode(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> DialRequest:
        return cls(**json.loads(text))


class OutboundDialer(Protocol):
    async def dial(self, request: DialRequest) -> None:
        """Send the INVITE for the request's call (its record exists); failures are recorded on the call."""


async def hand_off(redis: Redis, keys: Keyspace, member_id: str, request: DialRequest) -> str:
    """Put `request` in `member_id`'s inbox; the stream entry id. Safe to repeat: the call is dialed once."""
    entry = await redis.xadd(keys.inbox(member_id), {"request": request.encode()},
                             maxlen=INBOX_MAX_ENTRIES, approximate=True)
    return entry.decode() if isinstance(entry, bytes) else str(entry)


class Inbox:
    """This member's side: reads its inbox and dials each call once (on a client with decode_responses=True)."""

    def __init__(self, redis: Redis, keys: Keyspace, member_id: str, dialer: OutboundDialer, *,
                 block_ms: int = 1000, batch: int = 32) -> None:
        self.redis = redis
        self.keys = keys
        self.member_id = member_id
        self.dialer = dialer
        self.block_ms = block_ms
        self.batch = batch
        self.stopping = False  # set before cancelling run(): it ends at its next turn even if a cancel is lost

    @property
    def stream(self) -> str:
        return self.keys.inbox(self.member_id)

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, INBOX_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_once(self, *, pending: bool = False, block_ms: int | None = None) -> int:
        """Read and handle one batch: new entries, or (pending=True) this member's unacknowledged ones."""
        await self._ensure_group()
        replies = cast(StreamReplies, await self.redis.xreadgroup(
            INBOX_GROUP, self.member_id, {self.stream: "0" if pending else ">"}, count=self.batch,
            block=None if pending else block_ms))
        handled = 0
        for _stream, entries in replies or []:
            for entry_id, fields in entries:
                await self._handle(entry_id, fields)
                handled += 1
        return handled

    async def _handle(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            request = DialRequest.decode(fields.get("request", ""))
        except (TypeError, ValueError) as exc:
            log.error("inbox entry %s is not a dial request (%s); dropped", entry_id, exc)
        else:
            first = await self.redis.set(self.keys.dialed(request.call_id), self.member_id, nx=True,
                                         ex=DIALED_MARK_SECONDS)
            if first:
                try:
                    await self.dialer.dial(request)
                except Exception:  # the dialer records its own failures on the call; never dial it again
                    log.exception("call %s: dialing a handed-off call failed", request.call_id)
        await self.redis.xack(self.stream, INBOX_GROUP, entry_id)

    async def run(self) -> None:
        """Handle what a previous run left unacknowledged, then new entries, until cancelled (or `stopping`)."""
        recovered = False
        while not self.stopping:
            try:
                if not recovered:
                    while await self.read_once(pending=True):
                        pass
                    recovered = True
                await self.read_once(block_ms=self.block_ms)
            except RedisError as exc:
                log.warning("cluster inbox: Redis unreachable (%s); retrying", exc)
                await asyncio.sleep(1.0)
