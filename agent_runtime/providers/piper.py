"""TTS provider `PIPER`: Piper voices synthesized in a long-lived worker process.

Piper is GPL-3.0, so it is never imported here: `piper_worker.py` runs as a child process and speaks a
small framed protocol on its pipes (documented there). One worker per voice (and event loop) serves every
call in this process; requests are multiplexed by id and the worker answers the open ones in turn,
sentence by sentence, so a caller hears the first sentence while the next is being synthesized. The
worker starts on first use (or `warm()`), and a dead worker is replaced on the next request; a request
that was cut off by the crash before any of its audio arrived is retried once on the fresh worker.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from .base import ProviderError
from .piper_worker import AUDIO, END, ERROR, HEADER, READY, VOICES

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050
START_TIMEOUT = 60.0  # loading the ONNX voice takes ~1 s, more on a loaded machine

_DIED = object()
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds agent_runtime/


class _WorkerDied(Exception):
    pass


class _Worker:
    """One worker process and the reader task that routes its frames to the waiting requests."""

    def __init__(self, voice: str, model_path: str | None) -> None:
        self.voice = voice
        self.model_path = model_path
        self.sample_rate = SAMPLE_RATE
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stderr: asyncio.Task[None] | None = None
        self._streams: dict[int, asyncio.Queue[object]] = {}
        self._next_id = 1
        self._start_lock = asyncio.Lock()
        self._closing = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _alive(self) -> bool:
        return (self._proc is not None and self._proc.returncode is None and self._reader is not None
                and not self._reader.done())

    async def ensure(self) -> None:
        async with self._start_lock:
            if not self._alive():
                await self._start()

    def abandon(self) -> None:
        """Kill the process of a worker whose event loop is gone (its pipes cannot be used any more)."""
        if self._proc is not None and self._proc.returncode is None:
            try:
                os.kill(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def _start(self) -> None:
        args = [sys.executable, "-m", "agent_runtime.providers.piper_worker"]
        args += ["--model", self.model_path] if self.model_path else ["--voice", self.voice]
        log.info("starting Piper worker for voice %s", self.voice)
        # The worker imports this package: make it importable wherever the server was started from.
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env)
        self._stderr = asyncio.create_task(self._log_stderr(proc))
        stdout = proc.stdout
        assert stdout is not None  # stdout=PIPE
        try:
            header = await asyncio.wait_for(stdout.readexactly(HEADER.size), START_TIMEOUT)
            _id, kind, length = HEADER.unpack(header)
            payload = await asyncio.wait_for(stdout.readexactly(length), START_TIMEOUT)
            if kind != READY:
                raise ProviderError("Piper worker sent no ready frame")
            self.sample_rate = int(json.loads(payload)["sample_rate"])
        except BaseException as exc:  # also a cancelled start: never leave a half-started worker behind
            if proc.returncode is None:
                proc.kill()
            if not isinstance(exc, (asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, KeyError)):
                raise
            await proc.wait()
            raise ProviderError(f"Piper worker failed to start (exit {proc.returncode})") from exc
        self._proc = proc
        self._reader = asyncio.create_task(self._read_frames(proc))

    async def _log_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            log.info("piper worker: %s", line.decode(errors="replace").rstrip())

    async def _read_frames(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                request_id, kind, length = HEADER.unpack(await proc.stdout.readexactly(HEADER.size))
                payload = await proc.stdout.readexactly(length) if length else b""
                stream = self._streams.get(request_id)
                if stream is None:
                    continue  # a cancelled request's late frames
                if kind == AUDIO:
                    stream.put_nowait(payload)
                elif kind == END:
                    stream.put_nowait(END)
                elif kind == ERROR:
                    stream.put_nowait(ProviderError(f"Piper: {payload.decode(errors='replace')}"))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            (log.info if self._closing else log.warning)("Piper worker %s exited", proc.pid)
            if proc.returncode is None:
                proc.kill()
            self._fail_all()

    def _fail_all(self) -> None:
        for stream in self._streams.values():
            stream.put_nowait(_DIED)

    async def _send(self, message: dict) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(message).encode() + b"\n")
        await self._proc.stdin.drain()

    async def synthesize(self, text: str, speed: float | None) -> AsyncIterator[bytes]:
        for attempt in (1, 2):
            await self.ensure()
            request_id, self._next_id = self._next_id, self._next_id + 1
            stream: asyncio.Queue[object] = asyncio.Queue()
            self._streams[request_id] = stream
            finished = got_audio = False
            try:
                try:
                    await self._send({"id": request_id, "text": text, "speed": speed})
                except (ConnectionError, RuntimeError):
                    await self._kill()
                    raise _WorkerDied from None
                while True:
                    item = await stream.get()
                    if item is END:
                        finished = True
                        return
                    if item is _DIED:
                        raise _WorkerDied
                    if isinstance(item, ProviderError):
                        finished = True
                        raise item
                    got_audio = True
                    yield item  # type: ignore[misc]
            except _WorkerDied:
                finished = True
                if got_audio or attempt == 2:
                    raise ProviderError("the Piper worker died during synthesis") from None
                log.warning("Piper worker died before answering; retrying on a fresh worker")
            finally:
                self._streams.pop(request_id, None)
                if not finished and self._alive():
                    try:
                        await self._send({"cancel": request_id})
                    except (ConnectionError, RuntimeError):
                        pass

    async def _kill(self) -> None:
        """Make sure a worker whose pipe broke is gone, so the next `ensure()` starts a fresh one."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._closing = True
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        for task in (self._reader, self._stderr):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        self._proc = self._reader = self._stderr = None
        self._closing = False


# Workers per event loop: asyncio pipes belong to the loop that opened them, and a process may run more
# than one loop (a test's loop beside a live server's loop in a thread).
_workers: dict[asyncio.AbstractEventLoop, dict[tuple[str, str | None], _Worker]] = {}
_workers_lock = threading.Lock()


def _worker(voice: str, model_path: str | None) -> _Worker:
    loop = asyncio.get_running_loop()
    with _workers_lock:
        for old_loop in [lp for lp in _workers if lp.is_closed()]:
            for worker in _workers.pop(old_loop).values():
                worker.abandon()
        workers = _workers.setdefault(loop, {})
        key = (voice, model_path)
        if key not in workers:
            workers[key] = _Worker(voice, model_path)
        return workers[key]


async def shutdown_workers() -> None:
    """Stop the Piper workers of the running event loop (server shutdown, test teardown)."""
    with _workers_lock:
        workers = list(_workers.pop(asyncio.get_running_loop(), {}).values())
    for worker in workers:
        await worker.close()


def voice_name_of(model_path: str) -> str:
    """Catalog name of an operator's Piper voice (`TALKWIRE_PIPER_VOICE_PATH`): the file's name without
    `.onnx` (`en_GB-alba-medium`)."""
    name = Path(model_path).name
    return name[: -len(".onnx")] if name.endswith(".onnx") else Path(model_path).stem


def _configured_rate(model_path: str) -> int:
    """A Piper voice's rate, from the `.onnx.json` that sits beside its model."""
    try:
        with open(model_path + ".json", encoding="utf-8") as config:
            return int(json.load(config)["audio"]["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ProviderError(f"cannot read the Piper voice config {model_path}.json") from exc


class PiperTTS:
    """`TextToSpeech` with a Piper voice (`joe`: en_US, male, 22050 Hz) or any Piper .onnx (`model_path`)."""

    vendor = "PIPER"
    sample_rate = SAMPLE_RATE

    def __init__(self, voice: str = "joe", *, model_path: str | None = None) -> None:
        if model_path is None and voice not in VOICES:
            raise ProviderError(f"unknown Piper voice {voice!r}")
        if model_path is not None:
            self.sample_rate = _configured_rate(model_path)
        self.voice = voice
        self.model_path = model_path

    @property
    def worker_pid(self) -> int | None:
        """The process id of this voice's worker for the running loop (None before it started)."""
        return _worker(self.voice, self.model_path).pid

    async def warm(self) -> None:
        """Start the worker and load the voice now (server start) so the first reply is not delayed."""
        await _worker(self.voice, self.model_path).ensure()

    async def synthesize(self, text: str, *, speed: float | None = None) -> AsyncIterator[np.ndarray]:
        if not text.strip():
            return
        async for pcm in _worker(self.voice, self.model_path).synthesize(text, speed):
            yield np.frombuffer(pcm, dtype=np.int16)
