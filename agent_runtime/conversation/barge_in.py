"""Barge-in: when the caller's speech cuts the agent, and how the cut is made.

Policy: any detected start of the caller's speech while a reply is playing (or being prepared) cuts it;
change that here (`barges_in`). The cut silences the leg at once (its queue is cleared, the client gets
`clearAudio`), cancels the reply's LLM and TTS, cancels pending blocking client tools, and keeps in history
only what was heard (`heard.py` decides what that is).
"""
from __future__ import annotations

import logging
from typing import TypeGuard

from agent_runtime.conversation.heard import heard_text, keep_heard
from agent_runtime.conversation.host import ConversationHost
from agent_runtime.conversation.reply import Reply
from agent_runtime.sentences import ELLIPSIS
from agent_runtime.updates import BargeIn, TranscriptTurn

log = logging.getLogger(__name__)


def barges_in(reply: Reply | None) -> TypeGuard[Reply]:
    """Whether the caller starting to speak now cuts the agent's `reply` (None: nothing to cut)."""
    return reply is not None


async def cut_reply(host: ConversationHost, reply: Reply, cancel_reason: str | None = "barge_in") -> None:
    """Silence `reply` at once, then keep only what was heard. The caller of this forgets the reply.

    `cancel_reason`: why pending blocking client tools are cancelled (None: leave them open)."""
    leg = host.leg
    played = leg.outbound.played_total
    leg.outbound.clear()
    reply.cancelled = True
    await host.send({"type": "clearAudio"})
    if host.tools is not None and cancel_reason is not None:
        try:
            await host.tools.cancel_pending(cancel_reason)
        except Exception:
            log.exception("cancelling pending client tools failed")
    reply.stop_tasks()
    heard = heard_text(reply.segments, played, all_queued=reply.all_queued)
    keep_heard(host.history, reply.messages, reply.open_tool_calls, heard)
    heard_all = heard.all_text
    played_ms = int((played - reply.start_pos) * 1000 / leg.sample_rate) if reply.start_pos is not None else 0
    host.updates.put_nowait(BargeIn(max(0, played_ms)))
    if heard_all:
        text = heard_all + ELLIPSIS
        await host.send({"type": "transcription", "role": "agent", "text": text, "is_final": True,
                         "interrupted": True})
        host.updates.put_nowait(TranscriptTurn("agent", text, interrupted=True))
