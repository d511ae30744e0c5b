"""What the caller heard of a reply cut off at play position `played`, and keeping only that in history.

`heard_text()` is pure: segments (sentence text, play-position span, owning message) and the play position
in, the heard words per message out. A fully played sentence is kept whole, a partly played one keeps its
words in proportion (`sentences.heard_part`), and a reply that was cut anywhere is marked with "…".
Change what is kept after a cut here.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_runtime.conversation.reply import Segment
from agent_runtime.history import History
from agent_runtime.sentences import ELLIPSIS, heard_part

INTERRUPTED_TOOL_RESULT = '{"status": "interrupted", "reason": "barge_in"}'


@dataclass(slots=True)
class Heard:
    """The heard words of each message (by `id(message)`, in play order) and whether the reply was cut."""

    by_message: dict[int, list[str]] = field(default_factory=dict)
    cut: bool = False

    def text_of(self, message: dict[str, Any]) -> str:
        """The heard part of `message`, marked "…" when the reply was cut ("" when nothing was heard)."""
        heard = " ".join(t for t in self.by_message.get(id(message), []) if t)
        return heard + ELLIPSIS if heard and self.cut else heard

    @property
    def all_text(self) -> str:
        """Everything heard, unmarked."""
        return " ".join(t for texts in self.by_message.values() for t in texts if t)


def heard_text(segments: Sequence[Segment], played: int, *, all_queued: bool) -> Heard:
    """What of `segments` had played at play position `played`. `all_queued`: the whole reply had been
    queued (else its unsynthesized rest was cut too)."""
    heard = Heard()
    for segment in segments:
        if segment.start is None or segment.end is None or played <= segment.start:
            heard.cut = True
            continue
        fraction = (played - segment.start) / max(1, segment.end - segment.start)
        if fraction < 1.0:
            heard.cut = True
        if segment.message is not None:
            heard.by_message.setdefault(id(segment.message), []).append(heard_part(segment.text, fraction))
    heard.cut = heard.cut or not all_queued
    return heard


def keep_heard(history: History, messages: Sequence[dict[str, Any]], open_tool_calls: Sequence[str],
               heard: Heard) -> None:
    """Cut the reply's history `messages` to what was heard: a message nobody heard goes (unless it holds
    tool calls, which keep an empty text), and each tool call still open gets an "interrupted" result."""
    for message in messages:
        text = heard.text_of(message)
        if text:
            message["content"] = text
        elif message.get("tool_calls"):
            message["content"] = ""
        else:
            history.remove(message)
    for tool_call_id in open_tool_calls:
        history.add_tool_result(tool_call_id, INTERRUPTED_TOOL_RESULT)
