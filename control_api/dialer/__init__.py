"""The campaign dialer (docs/campaigns.md).

- `window`: the calling window (hours, days, time zone, DST) — pure.
- `retry`: outcome of an attempt → done, retry due later, or given up — pure.
- `states`: campaign, candidate and lead states and their moves — pure.
- `pacer`: the server-wide cap on new calls per second.
- `placer`: the `CallPlacer` seam the dialer places calls through (`Attempt` in, `AttemptResult` out).
- `loop`: the `Dialer` itself; its database steps are in `control_api.storage.dialer`.
"""
