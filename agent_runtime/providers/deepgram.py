"""STT `DEEPGRAM` (`nova-2`, `nova-3`): Deepgram's live transcription WebSocket, `GET /v1/listen`.

Protocol (docs/providers.md has the sources): the query string configures the stream (`model`,
`encoding=linear16`, `sample_rate`, `channels=1`, `interim_results`, `endpointing` ms, `utterance_end_ms`,
`language`), the `Authorization: Token <key>` header authenticates. The client sends binary frames of raw
audio and JSON text frames `{"type": "KeepAlive"}` (when it has no audio to send: the server closes an
idle stream after about 10 s), `{"type": "Finalize"}` (flush: the server *may* answer with a `Results`
carrying `from_finalize: true`, typically when audio was still buffered) and `{"type": "CloseStream"}` (the
server sends what is left, a `Metadata`, and closes). The server sends `Results` (`is_final`,
`speech_final`, `channel.alternatives[0].transcript`, `.languages` when the language is detected),
`UtteranceEnd`, `SpeechStarted` and `Metadata`.

Two ways to use it: `open(rate, language)` gives a `DeepgramStream` for audio as it comes (the leg's own
rate: 8000 for SIP, 16000 or 48000 for web). `transcribe(audio)` (the per-utterance `SpeechToText`
protocol) sends a whole utterance on its own stream and ends it with CloseStream, whose close is the one
documented, guaranteed end of the results (a Finalize answer is not guaranteed); the stream for the next
utterance is connected ahead, while the caller listens, and kept alive with KeepAlive, so no utterance
waits for a handshake. A connection that fails is dropped and the next utterance connects again.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any
from urllib.parse import urlencode

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from .base import ProviderError, SttEvent
from .remote import DEFAULT_TIMEOUTS, Timeouts

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "wss://api.deepgram.com"
MODELS = ("nova-2", "nova-3")
KEEPALIVE = json.dumps({"type": "KeepAlive"})
FINALIZE = json.dumps({"type": "Finalize"})
CLOSE_STREAM = json.dumps({"type": "CloseStream"})
_CLOSE = object()  # outbox marker: send CloseStream, then stop sending
_aborting: set[asyncio.Task[None]] = set()  # connections being closed in the background


class DeepgramStream:
    """One `/v1/listen` connection: `send()` queues audio, `events()` yields what Deepgram says."""

    def __init__(self, ws: ClientConnection, sample_rate: int, *, language: str | None = None,
                 keepalive_s: float = 4.0, close_timeout: float = 3.0, max_idle_s: float | None = None) -> None:
        self.sample_rate = sample_rate
        self.language = language
        self.max_idle_s = max_idle_s  # end the stream (CloseStream) after this long without audio
        self.audio_seconds = 0.0  # usage: audio sent on this stream
        self.request_id: str | None = ws.response.headers.get("dg-request-id") if ws.response else None
        self.failed: ProviderError | None = None
        self._ws = ws
        self._keepalive_s = keepalive_s
        self._close_timeout = close_timeout
        self._closing = False
        self._outbox: asyncio.Queue[bytes | str | object] = asyncio.Queue()
        self._events: asyncio.Queue[SttEvent | ProviderError | None] = asyncio.Queue()
        self._last_sent = self._last_audio = asyncio.get_running_loop().time()
        self._receiver = asyncio.create_task(self._receive(), name="deepgram-receive")
        self._sender = asyncio.create_task(self._send(), name="deepgram-send")
        self._keepalive = asyncio.create_task(self._keep_alive(), name="deepgram-keepalive")

    @property
    def closed(self) -> bool:
        return self._closing or self.failed is not None or self._receiver.done()

    # ---- audio in --------------------------------------------------------------------------------

    def send(self, samples: np.ndarray) -> None:
        if self.closed:
            return
        self.audio_seconds += len(samples) / self.sample_rate
        self._last_audio = asyncio.get_running_loop().time()
        self._outbox.put_nowait(np.ascontiguousarray(samples, dtype="<i2").tobytes())

    def finalize(self) -> None:
        if not self.closed:
            self._outbox.put_nowait(FINALIZE)

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                item = await self._outbox.get()
                if item is _CLOSE:
                    await self._ws.send(CLOSE_STREAM)
                    return
                assert isinstance(item, (bytes, str))
                await self._ws.send(item)
                self._last_sent = loop.time()
        except ConnectionClosed:
            pass  # the receiver reports how it ended

    async def _keep_alive(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            await asyncio.sleep(self._keepalive_s / 4)
            if self.max_idle_s is not None and loop.time() - self._last_audio > self.max_idle_s:
                self.end()  # nobody is using it: no stream held open forever
                return
            if loop.time() - self._last_sent >= self._keepalive_s and self._outbox.empty() and not self._closing:
                self._outbox.put_nowait(KEEPALIVE)
                self._last_sent = loop.time()

    # ---- events out ------------------------------------------------------------------------------

    async def events(self) -> AsyncGenerator[SttEvent, None]:
        while True:
            item = await self._events.get()
            if item is None:
                self._events.put_nowait(None)  # later readers see the end too
                return
            if isinstance(item, ProviderError):
                self._events.put_nowait(item)
                raise item
            yield item

    async def _receive(self) -> None:
        try:
            async for message in self._ws:
                if isinstance(message, bytes):
                    raise ProviderError("DEEPGRAM sent binary data on a transcription stream")
                event = parse_message(message)
                if event is not None:
                    self._events.put_nowait(event)
            self._events.put_nowait(None if self._closing else self._fail("the server closed the stream"))
        except ConnectionClosed as exc:
            self._events.put_nowait(None if self._closing and exc.rcvd is not None
                                    else self._fail(f"the connection dropped ({exc})"))
        except ProviderError as exc:
            self._events.put_nowait(self._fail(str(exc)))
            await self._ws.close()

    def _fail(self, why: str) -> ProviderError:
        self.failed = ProviderError(f"DEEPGRAM stream {self.request_id or ''}: {why}".replace("  ", " "))
        return self.failed

    def end(self) -> None:
        """Send CloseStream: the server sends its last results and closes; `events()` ends there."""
        if not self._closing:
            self._closing = True
            self._outbox.put_nowait(_CLOSE)

    def abort(self) -> None:
        """Drop the connection now, without the closing handshake (a failed or abandoned utterance)."""
        self._closing = True
        for task in (self._sender, self._keepalive, self._receiver):
            task.cancel()
        closing = asyncio.create_task(self._ws.close(), name="deepgram-abort")
        _aborting.add(closing)
        closing.add_done_callback(_aborting.discard)

    async def close(self) -> None:
        """CloseStream, wait for Deepgram's last results and its close, then release the connection."""
        self.end()
        try:
            await asyncio.wait_for(asyncio.shield(self._receiver), self._close_timeout)
        except (TimeoutError, asyncio.CancelledError):
            pass
        finally:
            for task in (self._sender, self._keepalive, self._receiver):
                task.cancel()
            await self._ws.close()


def _consume_failure(task: asyncio.Task[DeepgramStream]) -> None:
    """A stream connected ahead that failed is noticed when the next utterance takes it, or never: either way
    its failure is not an unhandled-exception log line."""
    if not task.cancelled():
        task.exception()


def parse_message(text: str) -> SttEvent | None:
    """One server message as an event (None for Metadata and SpeechStarted); anything that is not the
    documented shape is a ProviderError."""
    try:
        message: Any = json.loads(text)
        kind = message["type"]
    except (ValueError, TypeError, KeyError) as exc:
        raise ProviderError(f"DEEPGRAM sent an unexpected message: {text[:120]!r}") from exc
    if kind == "Results":
        try:
            alternative = message["channel"]["alternatives"][0]
            transcript = str(alternative.get("transcript") or "")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderError(f"DEEPGRAM Results without a transcript: {text[:120]!r}") from exc
        languages = alternative.get("languages") or []
        language = alternative.get("language") or (languages[0] if languages else None)
        if message.get("is_final"):
            return SttEvent("final", transcript, speech_final=bool(message.get("speech_final")),
                            from_finalize=bool(message.get("from_finalize")), language=language)
        return SttEvent("partial", transcript, language=language)
    if kind == "UtteranceEnd":
        return SttEvent("utterance_end")
    if kind in ("Metadata", "SpeechStarted"):
        return None
    if kind == "Error":
        raise ProviderError(f"DEEPGRAM error: {message.get('description') or message.get('message') or text[:120]}")
    log.debug("ignoring Deepgram message of type %s", kind)
    return None


class DeepgramSTT:
    """`SpeechToText` and `StreamingSpeechToText` over Deepgram's live WebSocket."""

    vendor = "DEEPGRAM"
    partials = False  # per-utterance partials would send the same audio again: streams give them for free
    speculative = False  # a paid API: no transcriptions that may be thrown away

    def __init__(self, model: str, api_key: str, base_url: str = DEFAULT_BASE_URL, *, sample_rate: int = 16000,
                 language: str | None = None, endpointing_ms: int = 300, utterance_end_ms: int = 1000,
                 timeouts: Timeouts = DEFAULT_TIMEOUTS, keepalive_s: float = 4.0, spare_idle_s: float = 60.0) -> None:
        self.model = model
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.sample_rate = sample_rate
        self.language = language
        self.detected_language: str | None = None
        self.endpointing_ms = endpointing_ms
        self.utterance_end_ms = utterance_end_ms
        self.timeouts = timeouts
        self.keepalive_s = keepalive_s
        self.spare_idle_s = spare_idle_s  # a stream connected ahead and unused this long is closed
        self.audio_seconds = 0.0  # usage over this instance's life
        self._spare: asyncio.Task[DeepgramStream] | None = None  # the next utterance's stream, connecting
        self._lock = asyncio.Lock()

    def url(self, sample_rate: int, language: str | None) -> str:
        query: dict[str, str | int] = {
            "model": self.model, "encoding": "linear16", "sample_rate": sample_rate, "channels": 1,
            "interim_results": "true", "endpointing": self.endpointing_ms,
            "utterance_end_ms": self.utterance_end_ms, "smart_format": "true",
        }
        if language:
            query["language"] = language
        return f"{self.base_url}/v1/listen?{urlencode(query)}"

    async def open(self, sample_rate: int, language: str | None = None, *,
                   max_idle_s: float | None = None) -> DeepgramStream:
        language = language or self.language
        url = self.url(sample_rate, language)
        try:
            ws = await asyncio.wait_for(
                connect(url, additional_headers={"Authorization": f"Token {self.api_key}"},
                        open_timeout=self.timeouts.connect, compression=None, max_size=2**20,
                        user_agent_header="talkwire"),
                self.timeouts.connect + 1)
        except InvalidStatus as exc:
            raise ProviderError(f"DEEPGRAM refused the stream: HTTP {exc.response.status_code} "
                                f"{exc.response.body[:200].decode(errors='replace') if exc.response.body else ''}"
                                ) from exc
        except (TimeoutError, OSError, WebSocketException) as exc:
            raise ProviderError(f"DEEPGRAM cannot connect to {self.base_url}: {exc!r}") from exc
        return DeepgramStream(ws, sample_rate, language=language, keepalive_s=self.keepalive_s,
                              max_idle_s=max_idle_s)

    async def warm(self) -> None:
        """Connect the first utterance's stream ahead (call start), so it does not wait for the handshake."""
        if self._spare is None:
            self._connect_ahead()

    def _connect_ahead(self) -> None:
        self._spare = asyncio.create_task(self.open(self.sample_rate, self.language, max_idle_s=self.spare_idle_s),
                                          name="deepgram-spare")
        self._spare.add_done_callback(_consume_failure)

    async def transcribe(self, audio: np.ndarray, *, final: bool = True) -> str:
        async with self._lock:
            stream = await self._take_stream()
            self._connect_ahead()
            duration = len(audio) / self.sample_rate
            limit = self.timeouts.first_result + duration
            try:
                return await asyncio.wait_for(self._utterance(stream, audio), limit)
            except TimeoutError:
                raise ProviderError(f"DEEPGRAM gave no final transcript within {limit:.1f} s") from None
            finally:
                stream.abort()  # ended by the server on success; dropped on failure or cancellation

    async def _take_stream(self) -> DeepgramStream:
        """The stream connected ahead for this utterance if it is still good, else a new one."""
        spare, self._spare = self._spare, None
        if spare is not None:
            try:
                stream = await spare
            except ProviderError:
                pass
            else:
                if not stream.closed and stream.language == self.language:
                    return stream
                stream.abort()
        return await self.open(self.sample_rate, self.language)

    async def _utterance(self, stream: DeepgramStream, audio: np.ndarray) -> str:
        stream.send(audio)
        stream.end()
        self.audio_seconds += len(audio) / self.sample_rate
        finals: list[str] = []
        async with aclosing(stream.events()) as events:
            async for event in events:
                if event.kind != "final":
                    continue
                if event.text:
                    finals.append(event.text)
                if event.language:
                    self.detected_language = event.language
        return " ".join(finals).strip()

    async def aclose(self) -> None:
        """Close the stream connected ahead, the documented way (CloseStream): the call is over."""
        async with self._lock:
            spare, self._spare = self._spare, None
            if spare is None:
                return
            if not spare.done():
                spare.cancel()
            try:
                stream = await spare
            except (ProviderError, asyncio.CancelledError):
                return
            await stream.close()
