"""The conversation's states. `USER_SPEAKING` is internal: the client sees `listening` (`State.visible`)."""
from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    LISTENING = "listening"
    USER_SPEAKING = "user_speaking"
    THINKING = "thinking"
    SPEAKING = "speaking"

    @property
    def visible(self) -> State:
        """The state the client and the call record see."""
        return State.LISTENING if self is State.USER_SPEAKING else self
