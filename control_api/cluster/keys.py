"""Where a deployment keeps its shared state in Redis: every key name, under one namespace.

    {ns}:members              sorted set: member id -> when its heartbeat runs out (ms, Redis server time)
    {ns}:member:{id}          hash: the member's presence and load (expires with its heartbeat)
    {ns}:reserved:{id}        sorted set: placements on that member not yet started -> when they run out (ms)
    {ns}:inbox:{id}           stream: outbound calls handed to that member (consumer group "members")
    {ns}:dialed:{call_id}     string: set once the call was taken for dialing (a repeated hand-off never dials)
    {ns}:calls                hash: live call id -> the member running it
    {ns}:calls:{id}           set: the live call ids of that member (to forget them when it dies)
    {ns}:bucket:{rule}:{key}  hash: a deployment-wide token bucket (tokens, at)

One Redis (with a replica for failover if wanted), not Redis Cluster: the placement script reads keys it only
finds while it runs, which Redis Cluster forbids across slots. Two deployments may share a Redis by namespace
or by database number (`redis://host/3`).
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMESPACE = "talkwire"
INBOX_GROUP = "members"


@dataclass(frozen=True, slots=True)
class Keyspace:
    namespace: str = DEFAULT_NAMESPACE

    @property
    def members(self) -> str:
        return f"{self.namespace}:members"

    def member(self, member_id: str) -> str:
        return f"{self.namespace}:member:{member_id}"

    def reserved(self, member_id: str) -> str:
        return f"{self.namespace}:reserved:{member_id}"

    def inbox(self, member_id: str) -> str:
        return f"{self.namespace}:inbox:{member_id}"

    def dialed(self, call_id: str) -> str:
        return f"{self.namespace}:dialed:{call_id}"

    @property
    def calls(self) -> str:
        return f"{self.namespace}:calls"

    def member_calls(self, member_id: str) -> str:
        return f"{self.namespace}:calls:{member_id}"

    def bucket(self, rule: str, key: str) -> str:
        return f"{self.namespace}:bucket:{rule}:{key}"


def text(value: str | bytes | int) -> str:
    """A Redis reply as text, whether the client decodes replies or not."""
    return value.decode() if isinstance(value, bytes) else str(value)
