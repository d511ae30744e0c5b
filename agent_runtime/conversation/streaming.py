"""Hearing through a streaming recogniser (`StreamingSpeechToText`, e.g. Deepgram's WebSocket).

One stream per call, connected at call start and again for the next utterance after a failure or a language
switch. The caller's frames go to it at the leg's own rate (no resampling) from the local turn detector's
speech start (its pre-roll included) to the end of their turn: `send()` only queues bytes, in the media
tick, with no task per frame. Between turns nothing is sent (the stream keeps itself alive), so neither the
agent's own voice nor silence is paid for.

How the vendor's endpointing combines with the local one: whichever decides first ends the turn. The
vendor's `speech_final` (or an `UtteranceEnd` after finals) while the local detector still hears the
caller's turn ends it at once (its 300 ms endpointing beats the local 500 ms silence wait); when the local
silence wait ends first, the stream is asked to `finalize()` and the turn takes the finals that answer, or
what it has after `FINALIZE_WAIT_S` (`stage_timeout_ms` when nothing at all came: then the stream stalled).
A stream that breaks hands the utterance's audio to the per-utterance path (the provider's own `transcribe`,
on a new connection, then the fallback); one that stalled is dropped and the fallback hears the utterance at
once, or, with none, the turn fails and the caller hears the apology. The
local VAD alone decides speech starts, so barge-in never waits for the network. Interim results are shown
as partials.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from typing import Protocol

import numpy as np

from agent_runtime.conversation.events import Partial, Transcript
from agent_runtime.conversation.host import ConversationHost
from agent_runtime.conversation.usage import Meter, vendor_of
from agent_runtime.providers.base import (
    ProviderError,
    StreamingSpeechToText,
    SttEvent,
    SttStream,
)

log = logging.getLogger(__name__)

FINALIZE_WAIT_S = 0.4  # after the local end of turn, how long finals already heard wait for the vendor's last
MAX_BACKLOG_S = 10.0  # caller audio kept while the stream connects


class TurnOwner(Protocol):
    """What the streaming part needs of the hearing that holds it."""

    utterance: int  # the caller's current/last utterance

    def vendor_ended_turn(self) -> None:
        """The vendor ended the caller's turn while the local detector still hears it: end it now."""
        ...

    def transcribe_utterance(self, utterance: int, speech_end_at: float, error: ProviderError,
                             stalled: bool) -> None:
        """The stream gave nothing for this turn (`error`; `stalled`: it said nothing, rather than broke):
        transcribe its audio the per-utterance way."""
        ...


class StreamingHearing:
    def __init__(self, host: ConversationHost, owner: TurnOwner, provider: StreamingSpeechToText,
                 meter: Meter) -> None:
        self.host = host
        self.owner = owner
        self.provider = provider
        self.meter = meter
        self.rate = host.leg.sample_rate
        self.language: str | None = None  # the stream's
        self.detected_language: str | None = None  # what the vendor reported for the last final
        self._stream: SttStream | None = None
        self._opening: asyncio.Task[None] | None = None
        self._backlog: list[np.ndarray] = []
        self._backlog_samples = 0
        self._finals: list[str] = []
        self._partial = ""
        self._vendor_ended = False  # the vendor ended the turn; the next `finish` takes the text at once
        self._pending: tuple[int, float] | None = None  # (utterance, speech end) waiting for the last finals
        self._timer: asyncio.TimerHandle | None = None
        self._sent = 0  # samples sent, not yet on the meter
        self.failed = False  # the stream broke: the turn under way goes to the per-utterance path

    # ---- the stream ---------------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect (again) unless a stream for the current language is up or connecting."""
        language = getattr(self.provider, "language", None)
        if self._opening is not None and not self._opening.done():
            return
        if self._stream is not None and not self.failed and language == self.language:
            return
        old, self._stream = self._stream, None
        if old is not None:
            self.host.spawn(old.close(), "stt-stream-close")
        self.language, self.failed = language, False
        self._opening = self.host.spawn(self._open(language), "stt-stream-open")

    async def _open(self, language: str | None) -> None:
        try:
            stream = await self.provider.open(self.rate, language)
        except ProviderError as exc:
            self._failed(exc)
            return
        self._stream = stream
        for samples in self._backlog:
            stream.send(samples)
        self._backlog, self._backlog_samples = [], 0
        if self._pending is not None:
            stream.finalize()
        self.host.spawn(self._read(stream), "stt-stream")

    async def _read(self, stream: SttStream) -> None:
        try:
            async with aclosing(stream.events()) as events:  # type: ignore[type-var]
                async for event in events:
                    if stream is self._stream:
                        self._on_event(event)
        except ProviderError as exc:
            if stream is self._stream:
                self._failed(exc)

    def _failed(self, error: ProviderError) -> None:
        self.failed = True
        self._stream = None
        self._backlog, self._backlog_samples = [], 0
        self.host.provider_failed("stt", error, vendor_of(self.provider))
        if self._pending is not None:
            self._give_up(error)

    async def close(self) -> None:
        self._flush_meter()
        if self._timer is not None:
            self._timer.cancel()
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.close()

    # ---- audio in (the media tick) ------------------------------------------------------------------

    def send(self, samples: np.ndarray) -> None:
        self._sent += len(samples)
        stream = self._stream
        if stream is not None:
            stream.send(samples)
        elif not self.failed and self._backlog_samples < MAX_BACKLOG_S * self.rate:
            self._backlog.append(samples)
            self._backlog_samples += len(samples)

    def speech_started(self, audio: np.ndarray) -> None:
        """The local detector heard speech start; `audio` is what it kept from before (pre-roll)."""
        self.connect()
        self._vendor_ended = False
        self.send(audio)

    # ---- results ------------------------------------------------------------------------------------

    def _on_event(self, event: SttEvent) -> None:
        if event.kind == "partial":
            self._partial = event.text
            text = " ".join([*self._finals, event.text]).strip()
            if text:
                self.host.post(Partial(text, self.owner.utterance))
            return
        if event.kind == "final":
            self._partial = ""
            if event.text:
                self._finals.append(event.text)
            if event.language:
                self.detected_language = event.language
            if event.speech_final or event.from_finalize:
                self._end_of_turn()
        elif self._finals:  # utterance_end after words
            self._end_of_turn()

    def _end_of_turn(self) -> None:
        if self._pending is not None:
            self._deliver()
        elif self._finals:
            self._vendor_ended = True
            self.owner.vendor_ended_turn()

    # ---- turns (on the conversation's loop) ---------------------------------------------------------

    def finish(self, utterance: int, speech_end_at: float) -> bool:
        """The caller's turn ended: deliver its transcript now (the vendor ended it) or once the vendor's
        last finals come. False: the stream cannot (it failed), use the per-utterance path."""
        if self.failed:
            self.failed = False  # this turn goes the other way; the next one connects again
            return False
        self._pending = (utterance, speech_end_at)
        if self._vendor_ended:
            self._vendor_ended = False
            self._deliver()
            return True
        stream = self._stream
        if stream is not None:
            stream.finalize()
        wait = FINALIZE_WAIT_S if self._finals else self.host.config.stage_timeout_ms / 1000
        self._timer = asyncio.get_running_loop().call_later(wait, self._finalize_timed_out)
        return True

    def resumed(self) -> None:
        """The caller spoke again before the transcript came: what was heard joins the next turn."""
        self._pending = None
        if self._timer is not None:
            self._timer.cancel()

    def _finalize_timed_out(self) -> None:
        if self._pending is None:
            return
        if self._finals or self._partial:
            self._deliver()
        else:
            self._give_up()

    def _give_up(self, error: ProviderError | None = None) -> None:
        """No result for the turn: the stream failed (`error`), or stalled (None). The hearing transcribes its
        audio the per-utterance way."""
        pending, self._pending = self._pending, None
        if self._timer is not None:
            self._timer.cancel()
        if pending is None:
            return
        stalled = error is None
        if error is None:
            limit = self.host.config.stage_timeout_ms / 1000
            error = ProviderError(f"{vendor_of(self.provider)} stream gave no transcript within {limit:g} s")
            self.host.provider_failed("stt", error, vendor_of(self.provider))
            stream, self._stream = self._stream, None  # the next utterance connects again
            if stream is not None:
                self.host.spawn(stream.close(), "stt-stream-close")
        self.owner.transcribe_utterance(*pending, error, stalled)

    def _deliver(self) -> None:
        pending, self._pending = self._pending, None
        if self._timer is not None:
            self._timer.cancel()
        if pending is None:
            return
        text = " ".join([*self._finals, self._partial] if not self._finals else self._finals).strip()
        self._finals, self._partial = [], ""
        self._flush_meter()
        utterance, speech_end_at = pending
        now = asyncio.get_running_loop().time()
        self.host.post(Transcript(text, utterance, speech_end_at, max(0.0, (now - speech_end_at) * 1000)))

    def _flush_meter(self) -> None:
        if self._sent:
            self.meter.add(vendor_of(self.provider), "stt_audio_s", self._sent / self.rate)
            self._sent = 0
