"""`talkwire loadtest`: synthetic callers against a Talkwire server, with per-call and server metrics.

A client of the server: it reaches it over HTTP, WebRTC and SIP only (or starts one as a child process), and the
server never imports it. Its display and plotting libraries come with the `loadtest` extra.

- `cli`            the command line, the run it asks for, its output
- `server`         the server under test: a local child process (or the echo baseline), or one given by URL
- `server_metrics` what the server measured, from its `GET /metrics`
- `step`           one step of load: N concurrent callers, their figures and the server's
- `ramp`           `--ramp`: steps up to the thresholds, calls per core, CPU per call
- `audio`          the callers' script of turns and its audio (espeak-ng speech cached on disk, silence, noise)
- `caller`         one scripted call, whatever its transport, and what it measures
- `webrtc_peer`    the aiortc caller that does what the browser SDK does (the tests use it too)
- `web_caller`     a scripted web call over that peer
- `sip`            SIP calls: the trunk the server dials, and calls into a linked number
- `echo`           a bare aiortc echo server with the same Phase 1/Phase 2 shape: the floor we compare with
- `echo_metrics`   the echo's `GET /metrics`, under the server's metric names
- `stats`          percentiles, word error rate, Prometheus histogram arithmetic
- `report`         the summary table, the JSON file, the PNG/HTML report
"""
