"""Hearing the caller: mic gating, VAD, turn detection, partial transcripts, speculation, STT runs.

Latency choices. The VAD runs at the leg's own rate when it can (WebRTC VAD takes 8/16/32/48 kHz), so no
streaming resampler delays speech detection. The utterance is kept at the leg's rate and resampled to the
STT rate in one call when it ends (about 0.1 ms per second of 8 kHz speech): per-frame streaming
resampling cost more in all, on every frame of every call.

`feed()` runs in the transport's media tick for every caller frame of every call: it must stay in
microseconds and allocate nothing per frame beyond what the VAD and the turn detector need. It reports
what it hears as events (SpeechStart, SpeechEnd, Partial, Transcript, SttFailed, SpeculationDone); the
conversation's loop decides what they mean. Add a hearing feature here.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np

from agent_runtime.conversation.events import (
    Partial,
    SpeculationDone,
    SpeechEnd,
    SpeechStart,
    SttFailed,
    Transcript,
)
from agent_runtime.conversation.host import ConversationHost
from agent_runtime.conversation.reply import Reply
from agent_runtime.conversation.speculation import Speculation, SttResult
from agent_runtime.conversation.state import State
from agent_runtime.conversation.streaming import StreamingHearing
from agent_runtime.conversation.usage import vendor_of
from agent_runtime.providers.base import ProviderError, VoiceActivityDetector
from agent_runtime.turn_taking import TurnDetector
from media.frames import AudioFrame, samples_per_frame
from media.resample import FrameResampler, Reframer, resample
from media.vad import SUPPORTED_RATES, WebRtcVad

log = logging.getLogger(__name__)


class Hearing:
    def __init__(self, host: ConversationHost) -> None:
        self.host = host
        config = host.config
        rate = host.leg.sample_rate
        self.vad: VoiceActivityDetector = config.vad or WebRtcVad(
            sample_rate=rate if rate in SUPPORTED_RATES else 16000)
        self._vad_resampler = (None if self.vad.sample_rate == rate
                               else FrameResampler(rate, self.vad.sample_rate, low_latency=True))
        self._reframer = Reframer(samples_per_frame(rate))
        self._detector = TurnDetector(
            endpointing_ms=config.endpointing_ms, preroll_ms=config.preroll_ms,
            start_frames=config.speech_start_frames, start_window=config.speech_start_window,
            max_utterance_ms=config.max_utterance_ms)
        self._last_voiced = False
        self._mic_open_at = 0.0
        self._mic_open = config.initial_disable_mic_duration <= 0
        self._last_partial_at = 0.0
        self.utterance = 0  # id of the caller's current/last utterance
        self.carry: np.ndarray | None = None  # audio of an utterance whose STT a new one interrupted
        self.stt_task: asyncio.Task[None] | None = None
        self._partial_task: asyncio.Task[None] | None = None
        self.speculation: Speculation | None = None
        self.held: Reply | None = None  # a speculative reply whose turn ended, until its transcript is handled
        provider = host.stages.streaming_stt  # the STT takes audio as it comes (streaming.py)
        self.streaming = None if provider is None else StreamingHearing(host, self, provider, host.stages.meter)

    def start(self) -> None:
        """Call start: connect the stream ahead, so the first words do not wait for a handshake."""
        if self.streaming is not None:
            self.streaming.connect()

    def use_stages(self) -> None:
        """The call's providers are (new) `host.stages` (agent_transfer): stream to their STT if it can."""
        old, provider = self.streaming, self.host.stages.streaming_stt
        if old is not None and old.provider is provider:
            return
        if old is not None:
            self.host.spawn(old.close(), "stt-stream-close")
        self.streaming = None if provider is None else StreamingHearing(
            self.host, self, provider, self.host.stages.meter)
        self.start()

    async def close(self) -> None:
        if self.streaming is not None:
            await self.streaming.close()

    def open_mic_after(self, ms: int) -> None:
        """Ignore the caller's audio for `ms` from now (the agent's `initial_disable_mic_duration`)."""
        self._mic_open_at = asyncio.get_running_loop().time() + ms / 1000

    # ---- per frame (in the transport's tick) ------------------------------------------------------

    def feed(self, frame: AudioFrame) -> None:
        """The leg's frames, cut into exact 20 ms frames at the leg rate."""
        for samples in self._reframer.push(frame.samples):
            self._on_frame(samples)

    def _on_frame(self, samples: np.ndarray) -> None:
        """One exact 20 ms frame at the leg rate: VAD, turn detection, partials. Microseconds, on the loop."""
        loop = asyncio.get_running_loop()
        if not self._mic_open:
            if loop.time() < self._mic_open_at:
                return
            self._mic_open = True
            self._detector.reset()
        if self._vad_resampler is None:
            voiced = self.vad.is_speech(samples)
        else:
            decisions = [self.vad.is_speech(f.samples) for f in self._vad_resampler.push(samples)]
            voiced = any(decisions) if decisions else self._last_voiced
        self._last_voiced = voiced
        event = self._detector.feed(samples, voiced)
        streaming = self.streaming
        if streaming is not None:
            if event == "start":
                streaming.speech_started(self._detector.utterance())
            elif event == "end" or self._detector.speaking:
                streaming.send(samples)
        if event == "start":
            self._last_partial_at = loop.time()
            self.host.post(SpeechStart(loop.time()))
        elif event == "end":
            self.host.post(SpeechEnd(self._utterance_for_stt(), loop.time()))
        elif self._detector.speaking:
            silent = self._detector.silent_frames
            if silent == 0:
                self.drop_speculation()  # speech resumed: the utterance will be longer
                self._maybe_partial(loop.time())
            elif silent == self._detector.tail_frames:
                self._maybe_speculate()

    def _utterance_for_stt(self) -> np.ndarray:
        """The caller's current (or just ended) utterance at the STT rate."""
        return resample(self._detector.utterance(), self.host.leg.sample_rate, self.host.stages.stt.sample_rate)

    def _maybe_partial(self, now: float) -> None:
        config = self.host.config
        interval = config.partial_interval_ms / 1000
        if (interval <= 0 or self.streaming is not None or not self.host.stages.stt.partials
                or now - self._last_partial_at < interval or self.stt_task is not None
                or self.speculation is not None
                or (self._partial_task is not None and not self._partial_task.done())):
            return
        self._last_partial_at = now
        audio = self._utterance_for_stt()
        self._partial_task = self.host.spawn(self._transcribe_partial(audio, self.utterance), "stt-partial")

    def _maybe_speculate(self) -> None:
        """The caller paused (TAIL_MS of non-speech): start the final transcription of what they said so far.

        A partial still waiting for the STT is cancelled (a final matters more); one already running in a
        provider's thread cannot be stopped and finishes first."""
        config = self.host.config
        if (not config.speculative_stt or self.streaming is not None or not self.host.stages.stt.speculative
                or self.host.state is not State.USER_SPEAKING or self.speculation is not None):
            return
        if self._partial_task is not None and not self._partial_task.done():
            self._partial_task.cancel()
            self._partial_task = None
        audio = self._utterance_for_stt()
        if self.carry is not None:
            audio = np.concatenate((self.carry, audio))
        speculation = Speculation(self.utterance, len(audio),
                                  self.host.spawn(self._run_stt(audio), "stt-speculative"))
        self.speculation = speculation
        post = self.host.post
        speculation.task.add_done_callback(lambda task: task.cancelled() or post(SpeculationDone(speculation)))

    def speculation_done(self, speculation: Speculation, start_held: Callable[[str], Reply]) -> None:
        """The speculative transcript is there and the caller is still silent: start the reply on it, held
        (`start_held(text)`), when the agent's LLM allows it."""
        host = self.host
        if (speculation is not self.speculation or host.state is not State.USER_SPEAKING
                or speculation.reply is not None
                or not host.config.speculative_reply or not host.stages.llm.speculative):
            return
        text, _run_ms = speculation.task.result()
        if isinstance(text, ProviderError) or not text.strip():
            return
        speculation.reply = start_held(text.strip())

    async def show_partial(self, partial: Partial) -> None:
        """What the caller is saying so far, to the client, while they still speak."""
        if self.host.state is State.USER_SPEAKING and partial.utterance == self.utterance and partial.text:
            await self.host.send({"type": "transcription", "role": "user", "text": partial.text, "is_final": False})

    def drop_speculation(self) -> None:
        speculation, self.speculation = self.speculation, None
        if speculation is not None:
            speculation.task.cancel()
            if speculation.reply is not None:
                self.host.discard_held(speculation.reply)

    # ---- turns (on the conversation's loop) -------------------------------------------------------

    def speech_started(self) -> None:
        """The caller began a new utterance (a new turn for the providers: primaries first again)."""
        self.utterance += 1
        self.host.stages.new_turn()

    def vendor_ended_turn(self) -> None:
        """The streaming recogniser heard the caller stop before the local silence wait did: end it now."""
        if self._detector.speaking:
            audio = self._utterance_for_stt()
            self._detector.reset()
            self.host.post(SpeechEnd(audio, asyncio.get_running_loop().time()))

    def transcribe_utterance(self, utterance: int, speech_end_at: float, error: ProviderError,
                             stalled: bool) -> None:
        """The stream gave nothing this turn: its audio goes to the per-utterance STT. A stream that broke is
        tried again there (a new connection); one that stalled is not waited for twice: the fallback, if any,
        hears it, else the turn fails (the caller hears the apology)."""
        if utterance != self.utterance or self.carry is None or self.host.state is not State.THINKING:
            return
        stt = self.host.stages.stt
        if stalled:
            if stt.fallback is None:
                self.host.post(SttFailed(error, utterance))
                return
            stt.failed_over = True
        self.stt_task = self.host.spawn(self._transcribe(self.carry, utterance, speech_end_at), "stt")

    def speech_resumed_during_stt(self) -> None:
        """The caller went on talking while their last utterance was being transcribed: keep that audio
        (`carry`) and transcribe it together with what comes now."""
        if self.streaming is not None:
            self.streaming.resumed()
        if self.stt_task is None:
            return
        self.stt_task.cancel()
        self.stt_task = None
        if self.held is not None:
            self.host.discard_held(self.held)
            self.held = None

    def turn_ended(self, audio: np.ndarray, at: float) -> None:
        """The caller's turn ended with `audio` (at the STT rate): start its final transcription, or take the
        speculation's when it transcribes exactly this audio."""
        if self.carry is not None:
            audio = np.concatenate((self.carry, audio))
        self.carry = audio
        if self.streaming is not None and self.streaming.finish(self.utterance, at):
            return
        if self._partial_task is not None:
            self._partial_task.cancel()
            self._partial_task = None
        speculation, self.speculation = self.speculation, None
        if (speculation is not None and speculation.utterance == self.utterance
                and speculation.samples == len(audio) and not speculation.task.cancelled()):
            self.held = speculation.reply  # set now or never: a later speculation result is not this one's
            self.stt_task = self.host.spawn(self._finish_speculation(speculation, self.utterance, at), "stt")
        else:
            if speculation is not None:
                self.speculation = speculation
                self.drop_speculation()
            self.stt_task = self.host.spawn(self._transcribe(audio, self.utterance, at), "stt")

    def transcribed(self, text: str = "") -> None:
        """The current utterance's transcript (or failure) was taken: forget its audio and task. A transcript
        with words may identify the caller's language (language.py)."""
        self.stt_task = None
        self.carry = None
        if not text:
            return
        if self.streaming is not None:
            reported, source = self.streaming.detected_language, vendor_of(self.streaming.provider)
        else:
            current = self.host.stages.stt.current
            reported, source = getattr(current, "detected_language", None), vendor_of(current)
        self.host.stages.language.heard(reported, source)

    # ---- STT runs -----------------------------------------------------------------------------------

    async def _run_stt(self, audio: np.ndarray) -> SttResult:
        """One final transcription: (text, or the provider's error; how long the call took in ms)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            text: str | ProviderError = await self.host.stages.stt.transcribe(audio, final=True)
        except ProviderError as exc:
            text = exc
        return text, (loop.time() - started) * 1000

    async def _finish_speculation(self, speculation: Speculation, utterance: int, speech_end_at: float) -> None:
        """The turn ended on the audio the speculation transcribes: its result is the final transcript."""
        loop = asyncio.get_running_loop()
        text, run_ms = await speculation.task
        if isinstance(text, ProviderError):  # the same audio as a final: the same failure as a final's
            self.host.post(SttFailed(text, utterance))
            return
        self.host.post(Transcript(text, utterance, speech_end_at, (loop.time() - speech_end_at) * 1000, run_ms,
                                  speculative=True, held=speculation.reply))

    async def _transcribe_partial(self, audio: np.ndarray, utterance: int) -> None:
        try:
            text = await self.host.stages.stt.transcribe(audio, final=False)
        except ProviderError as exc:
            log.info("partial transcription failed: %s", exc)
            return
        self.host.post(Partial(text.strip(), utterance))

    async def _transcribe(self, audio: np.ndarray, utterance: int, speech_end_at: float) -> None:
        loop = asyncio.get_running_loop()
        text, run_ms = await self._run_stt(audio)
        if isinstance(text, ProviderError):
            self.host.post(SttFailed(text, utterance))
            return
        self.host.post(Transcript(text, utterance, speech_end_at, (loop.time() - speech_end_at) * 1000, run_ms))
