"""The agent side of a call: turn-taking, the LLM → TTS pipeline, barge-in, silence handling.

A `Conversation` joins one Leg to one agent. It is a state machine (`machine.py`) fed by events from one
queue; each concern is its own module:

    hearing.py     mic gating, VAD, turn detector, partials, speculation, STT runs   ("add a hearing feature")
    generation.py  the LLM stream cut into sentences, tool rounds, pending context
    speaking.py    TTS in order, resampling to the leg, the play position, playback announcements
    barge_in.py    when the caller's speech cuts the agent, and the cut               ("change barge-in policy")
    heard.py       what the caller heard of a cut reply, kept in history             ("change what is kept")
    silence.py     the silence alert and silence hang-up timers
    dtmf.py        keypad digits collected into one caller turn
    stages.py      the call's providers: guarded by deadlines with the agent's fallbacks (guarded.py), in the
                   call's language (language.py), metered (usage.py)               ("add a failure policy")
    streaming.py   hearing through a streaming recogniser (Deepgram): partials, the vendor's end of turn
    reply.py       a reply in flight (`Reply`, `ReplyKind`); state.py: `State`; events.py: the loop's events
"""
from agent_runtime.conversation.machine import Conversation, MessageHandler
from agent_runtime.conversation.reply import ReplyKind
from agent_runtime.conversation.state import State

__all__ = ["Conversation", "MessageHandler", "ReplyKind", "State"]
