"""`talkwire loadtest`: synthetic web callers against a Talkwire server, with per-call and server metrics.

- `audio`   the callers' script of turns and its audio (espeak-ng speech cached on disk, silence, noise)
- `caller`  one aiortc caller that does what the browser SDK does and measures the call at its end
- `echo`    a bare aiortc echo server with the same Phase 1/Phase 2 shape: the floor we compare with
- `runner`  steady load and `--ramp`, the local server child process, the CLI command
- `stats`   percentiles, word error rate, Prometheus histogram arithmetic
- `report`  the summary table, the JSON file, the PNG/HTML report
"""
