"""Many workers: this process as one member of a deployment that shares PostgreSQL and Redis.

Off unless TALKWIRE_REDIS_URL is set; then `ClusterMember.open` (node.py) runs the parts:

    keys.py       the Redis key names, under one namespace
    member.py     MemberState: what a member publishes about itself
    scripts.py    the Lua scripts (heartbeat, live members, placement), each one atomic step in Redis
    presence.py   the heartbeat (TTL'd presence and load) and the live-member list
    placement.py  the least-loaded member with room, reserved atomically
    handoff.py    outbound phone calls handed to the chosen member's inbox, dialed exactly once
    outbound.py   outbound phone calls (API or campaign dialer) placed on a member and followed to their end
    directory.py  which member runs a live call
    lost.py       survivors mark the open calls of a dead member failed / worker_lost
    leader.py     run_while_leader: one holder of the campaign dialer per deployment (PostgreSQL advisory lock)
    forwarding.py a request about a call another member runs, sent on to that member
    internal_auth.py  requests between members, signed with TALKWIRE_CLUSTER_SECRET
    limiter.py    RedisLimiter: the rate limits' token buckets shared by the deployment

See docs/deployment.md, "Many workers".
"""
