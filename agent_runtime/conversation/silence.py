"""Silence timers: the alert after `call_user_alert_duration` and the hang-up after `call_end_duration` of a
caller's silence.

A "stretch" is one period of listening; its timers post `Silence(stretch, hang_up)` and an event from an
older stretch is ignored. The alert is spoken at most once per stretch, and speaking it does not start a new
stretch (so the hang-up still comes `call_end_duration` after the stretch began).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from agent_runtime.agent_config import AgentConfig
from agent_runtime.conversation.events import Event, Silence


class SilenceTimers:
    def __init__(self, post: Callable[[Event], None]) -> None:
        self._post = post
        self.stretch = 0  # id of the current silence stretch
        self._timers: list[asyncio.TimerHandle] = []
        self._alerted_stretch = -1

    def new_stretch(self, config: AgentConfig) -> None:
        """The caller is listened to from now: start this stretch's alert and hang-up timers."""
        self.stretch += 1
        self.cancel()
        loop = asyncio.get_running_loop()
        alert, end = config.call_user_alert_duration, config.call_end_duration
        if alert > 0 and config.silence_alert_message:
            self._timers.append(loop.call_later(alert / 1000, self._post, Silence(self.stretch, False)))
        if end > 0:
            self._timers.append(loop.call_later(end / 1000, self._post, Silence(self.stretch, True)))

    def caller_spoke(self) -> None:
        """The caller's speech ends the stretch (its timers stop)."""
        self.stretch += 1
        self.cancel()

    def is_current(self, event: Silence) -> bool:
        return event.stretch == self.stretch

    def take_alert(self) -> bool:
        """Whether this stretch may still have its alert (True once per stretch)."""
        if self._alerted_stretch == self.stretch:
            return False
        self._alerted_stretch = self.stretch
        return True

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
