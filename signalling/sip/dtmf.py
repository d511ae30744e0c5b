"""RFC 4733 telephone-events: DTMF digits as RTP payloads, both ways."""
from __future__ import annotations

import struct
from dataclasses import dataclass

EVENTS = "0123456789*#ABCD"
_EVENT_OF = {ch: i for i, ch in enumerate(EVENTS)}

TONE_FRAMES = 5  # 100 ms of tone: one packet per 20 ms
GAP_FRAMES = 3  # 60 ms between digits
END_REPEATS = 3  # the end packet is sent three times (RFC 4733 §2.5.1.4)
SAMPLES_PER_FRAME = 160


class DtmfError(ValueError):
    """Digits we cannot send."""


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        return EVENTS[self.event] if 0 <= self.event < len(EVENTS) else None


def parse_event(payload: bytes) -> TelephoneEvent | None:
    if len(payload) < 4:
        return None
    event, flags, duration = struct.unpack_from("!BBH", payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def pack_event(event: int, end: bool, duration: int, volume: int = 10) -> bytes:
    return struct.pack("!BBH", event, (0x80 if end else 0) | (volume & 0x3F), duration)


def validate_digits(digits: str) -> str:
    cleaned = digits.replace(" ", "").upper()
    bad = sorted({ch for ch in cleaned if ch not in _EVENT_OF})
    if not cleaned or bad:
        raise DtmfError(f"cannot send DTMF {digits!r}: only 0-9, *, #, A-D")
    return cleaned


def digit_plan(digits: str) -> list[tuple[bytes, bool, bool] | None]:
    """One entry per 20 ms tick: (payload, marker, new_event) for an event packet, None for a gap tick.

    `new_event` marks the first packet of a digit, where the RTP timestamp of the event is fixed;
    the end packets repeat that timestamp.
    """
    plan: list[tuple[bytes, bool, bool] | None] = []
    cleaned = validate_digits(digits)
    for index, ch in enumerate(cleaned):
        event = _EVENT_OF[ch]
        for frame in range(1, TONE_FRAMES + 1):
            plan.append((pack_event(event, False, frame * SAMPLES_PER_FRAME), frame == 1, frame == 1))
        for _ in range(END_REPEATS):
            plan.append((pack_event(event, True, TONE_FRAMES * SAMPLES_PER_FRAME), False, False))
        if index < len(cleaned) - 1:
            plan.extend([None] * GAP_FRAMES)
    return plan


class DtmfReceiver:
    """Turns a stream of event packets into digits, each reported once (at its first packet)."""

    def __init__(self) -> None:
        self._last_timestamp: int | None = None

    def feed(self, timestamp: int, payload: bytes) -> str | None:
        ev = parse_event(payload)
        if ev is None or ev.digit is None:
            return None
        if timestamp == self._last_timestamp:
            return None  # continuation, end packet or retransmission of the same event
        self._last_timestamp = timestamp
        return ev.digit
