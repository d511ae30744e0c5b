"""How a call ended: one vocabulary for every layer (transports, the conversation, the API, the records).

`EndReason` is a `str` enum, so its members compare equal to, serialise as, and are stored as the plain strings
the API has always returned (`"remote_hangup"`, `"silence_timeout"`, …). Each member knows whether it is a
failure: `reason.failed` decides the call record's final status (`failed` or `completed`), so no layer keeps a
hand-made list of failed reasons.

A SIP outcome (`busy`, `no_answer`, …) is also an end reason: a call that was never answered ends with it.
"""
from __future__ import annotations

from enum import StrEnum


class EndReason(StrEnum):
    failed: bool

    def __new__(cls, value: str, failed: bool = False) -> EndReason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.failed = failed
        return member

    # Ended by the caller or by us, normally.
    REMOTE_HANGUP = "remote_hangup"  # the caller hung up (BYE, browser closed the connection)
    AGENT_HANGUP = "agent_hangup"  # we hung up (the default reason of `leg.hangup()`)
    AGENT_ENDED_CALL = "agent_ended_call"  # the agent's `end_call` tool
    SILENCE_TIMEOUT = "silence_timeout"  # the caller stayed silent past the agent's silence hang-up
    TRANSFERRED = "transferred"  # the call was handed to another party (SIP REFER accepted)
    SESSION_CONTINUED = "session_continued"  # the caller continued this conversation on a new call
    SERVER_SHUTDOWN = "server_shutdown"  # the server stopped while the call was live
    API_HANGUP = "api_hangup"  # ended through the control API
    AGENT_DELETED = "agent_deleted"  # the agent was deleted before its call could start
    CALLER_HANGUP = "caller_hangup"  # a test or load-test caller ended its own side
    ENDED = "ended"  # the conversation stopped with no more precise reason

    # The call did not connect, or broke: the record is `failed`.
    BUSY = ("busy", True)
    NO_ANSWER = ("no_answer", True)
    REJECTED = ("rejected", True)
    AUTH_FAILED = ("auth_failed", True)
    NETWORK_ERROR = ("network_error", True)
    NO_USABLE_CODEC = ("no_usable_codec", True)
    CONNECT_TIMEOUT = ("connect_timeout", True)  # a web offer whose connection never came up
    NOT_CONNECTED = ("not_connected", True)  # a web call created but never connected
    INTERNAL_ERROR = ("internal_error", True)  # the conversation crashed
    LEG_FAILED = ("leg_failed", True)  # the transport broke under the conversation
    LEG_ENDED = ("leg_ended", True)  # the transport went away without saying why
    MEDIA_ERROR = ("media_error", True)  # an error in this call's media path ended it (the other calls went on)
    WORKER_LOST = ("worker_lost", True)  # the process running the call died
    ERROR = ("error", True)  # the call could not be set up

    @classmethod
    def parse(cls, value: str | EndReason | None) -> EndReason | None:
        """The member for a stored or received string; None for None or a string outside the vocabulary."""
        if value is None or isinstance(value, EndReason):
            return value
        try:
            return cls(value)
        except ValueError:
            return None


def is_failure(reason: str | EndReason | None) -> bool:
    """Whether a call that ended for `reason` is recorded `failed` (an unknown reason counts as a failure: a
    reason nobody named is not a normal ending)."""
    if reason is None:
        return False
    member = EndReason.parse(reason)
    return True if member is None else member.failed
