"""Log lines that hostile traffic cannot multiply: one line per key (source, reason) per interval.

Anything from the network can be repeated thousands of times a second; a log line (or a traceback) per packet,
request or message would let an attacker fill the disk and hide everything else. `LimitedLog.log(key, ...)` writes
the first line for `key`, then stays quiet for `interval` seconds and says how many it held back on the next line.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict

MAX_KEYS = 4096  # keys remembered; the oldest is forgotten first (an attacker varying the key cannot grow memory)


class LimitedLog:
    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self.logger = logger
        self.interval = interval
        self._seen: OrderedDict[object, tuple[float, int]] = OrderedDict()

    def log(self, level: int, key: object, message: str, *args: object) -> bool:
        """Log `message % args` at `level` unless `key` was logged less than `interval` ago; True if written."""
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.interval:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        held = last[1] if last is not None else 0
        self._seen[key] = (now, 0)
        self._seen.move_to_end(key)
        while len(self._seen) > MAX_KEYS:
            self._seen.popitem(last=False)
        if held:
            message += " (%d more like this in the last %.0f s)"
            args = (*args, held, self.interval)
        self.logger.log(level, message, *args)
        return True
