"""Speaking a reply: TTS in order, resampling to the leg's rate, queueing on the leg, the play position.

A reply is split into sentences while the LLM streams; `speak()` synthesizes them in order and pushes audio
as soon as each chunk exists, so TTS runs ahead of playback. Each sentence is placed on the outbound
"play position" axis (played_total + queued when pushed); `watch_playback()` announces sentences as they
start playing and posts PlaybackDone once the reply's end position has played.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing

import numpy as np

from agent_runtime.conversation.events import AudioStarted, PlaybackDone
from agent_runtime.conversation.host import ConversationHost
from agent_runtime.conversation.reply import Apology, Reply, Segment
from agent_runtime.providers.base import ProviderError, TextToSpeech
from media.resample import StreamResampler

log = logging.getLogger(__name__)


class Speaker:
    def __init__(self, host: ConversationHost) -> None:
        self.host = host
        self.wakeup = asyncio.Event()  # the playback watcher has something new to wait for

    def play_position(self) -> int:
        out = self.host.leg.outbound
        return out.played_total + out.queued_samples

    async def speak(self, reply: Reply) -> None:
        """Synthesize the reply's pieces in order and queue their audio on the leg as it comes.

        When the voice fails (its fallback too, if any), the local voice says sorry once and the reply's
        remaining sentences are dropped (their text leaves the history): the caller never waits in silence."""
        host = self.host
        while True:
            item = await reply.pieces.get()
            if item is None:
                break
            if isinstance(item, Apology):
                await self._apologise(reply, item.text)
                continue
            text, message = item
            segment = Segment(text, message)
            if not reply.apologised:
                try:
                    await self._say(reply, segment, host.stages.tts)
                    continue
                except ProviderError:
                    pass  # reported by the guarded stage
            if reply.cancelled:
                return
            if segment.start is None and message is not None:
                message["content"] = message["content"].replace(text, "", 1).strip()
            await self._apologise(reply, host.stages.language.apology())
        await reply.released.wait()  # a held reply's end is placed once its audio went out
        if reply.cancelled:
            return
        reply.all_queued = True
        reply.end_pos = self.play_position()
        self.wakeup.set()

    async def _say(self, reply: Reply, segment: Segment, tts: TextToSpeech) -> None:
        """One sentence, its audio queued as it comes; raises the voice's ProviderError."""
        loop = asyncio.get_running_loop()
        resampler = StreamResampler(tts.sample_rate, self.host.leg.sample_rate)
        started = loop.time()
        audio = tts.synthesize(segment.text, speed=self.host.config.speed)
        async with aclosing(audio):  # type: ignore[type-var]
            async for chunk in audio:
                if reply.cancelled:
                    return
                if reply.tts_first_audio_ms is None and len(chunk):
                    reply.tts_first_audio_ms = (loop.time() - started) * 1000
                self.push(reply, segment, resampler.push(np.asarray(chunk, dtype=np.int16)))
        if not reply.cancelled:
            self.push(reply, segment, resampler.flush())

    async def _apologise(self, reply: Reply, text: str | None) -> None:
        """Say `text` once per reply with the local voice (a provider failed)."""
        if reply.apologised or reply.cancelled or not text:
            return
        reply.apologised = True
        voice = self.host.stages.language.local_voice()
        try:
            await self._say(reply, Segment(text, None), voice)
        except ProviderError as exc:
            log.error("the local voice failed too, the caller hears nothing: %s", exc)

    def push(self, reply: Reply, segment: Segment, samples: np.ndarray) -> None:
        if not len(samples) or reply.cancelled:
            return
        if reply.held:
            reply.backlog.append((segment, samples))
            return
        position = self.play_position()
        if segment.start is None:
            segment.start = position
            reply.segments.append(segment)
            if reply.start_pos is None:
                reply.start_pos = position
            if reply.first_audio_at is None:
                reply.first_audio_at = asyncio.get_running_loop().time()
                self.host.post(AudioStarted(reply))
        self.host.leg.outbound.push(samples)
        segment.end = position + len(samples)
        self.wakeup.set()

    def release(self, reply: Reply) -> None:
        """The turn ended as speculated: the held reply's audio goes out, in order, and it goes on as usual."""
        reply.held = False
        backlog, reply.backlog = reply.backlog, []
        for segment, samples in backlog:
            self.push(reply, segment, samples)
        reply.released.set()

    async def watch_playback(self) -> None:
        """Announce each sentence as it starts playing and post PlaybackDone when a reply has played.

        Sleeps until the next position it waits for should be reached, instead of polling every frame.
        """
        host = self.host
        rate = host.leg.sample_rate
        while True:
            reply = host.current_reply
            played = host.leg.outbound.played_total
            waiting_for: int | None = None
            if reply is not None and not reply.cancelled:
                for segment in reply.segments:
                    if segment.announced or segment.start is None:
                        continue
                    if played > segment.start or (played == segment.start and segment.end == segment.start):
                        segment.announced = True
                        heard = " ".join(s.text for s in reply.segments if s.announced)
                        host.spawn(host.send({"type": "transcription", "role": "agent", "text": heard,
                                              "is_final": False}), "send")
                    else:
                        waiting_for = segment.start + 1
                        break
                if reply.all_queued and reply.end_pos is not None and not reply.done_posted:
                    if played >= reply.end_pos:
                        reply.done_posted = True
                        host.post(PlaybackDone(reply))
                        continue
                    waiting_for = waiting_for or reply.end_pos
            self.wakeup.clear()
            if waiting_for is None:
                await self.wakeup.wait()
                continue
            delay = min(0.2, max(0.005, (waiting_for - played) / rate))
            # A timer sets the same event (asyncio.wait_for in 3.11 can swallow a cancellation).
            timer = asyncio.get_running_loop().call_later(delay, self.wakeup.set)
            try:
                await self.wakeup.wait()
            finally:
                timer.cancel()
