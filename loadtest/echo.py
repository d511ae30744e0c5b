"""The baseline: a bare aiortc echo server with Talkwire's Phase 1/Phase 2 shape, under the same callers.

    python -m loadtest.echo [--host 127.0.0.1] [--port 0]     # prints one JSON line: {"url": ...}

It decodes each caller's Opus, downmixes it to mono (as Talkwire's leg does) and sends it back on a 20 ms
track paced by the same shared `MediaClock` as Talkwire's legs, with nothing else in between: no VAD, no
conversation, no database, no recording. `GET /metrics` exports the same outbound frame lag, clock,
event-loop and process metrics as the real server, so the load tester applies the same thresholds to both
and the ratio of their capacities is the cost of everything Talkwire adds on top of aiortc.

Routes: POST /calls/create → {call_id, status, worker_url}; POST /webrtc?call=ID (offer → answer);
GET /assistant → one agent "echo"; GET /metrics.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from fractions import Fraction

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from loadtest.echo_metrics import CONTENT_TYPE, EchoMetrics
from media.end_reason import EndReason
from media.frame_lag import FrameLagMeter
from media.pacing import MediaClock
from signalling.ice import restrict_host_addresses, rtc_configuration

RATE = 48000
FRAME = 960
BACKLOG = 10  # frames of echo kept at most (200 ms): beyond, the oldest go


class EchoTrack(MediaStreamTrack):
    """Sends the latest decoded inbound frames back, one per shared clock tick (silence when none).

    Like Talkwire's AgentAudioTrack, ticks the sender missed (aiortc's encoder hop ran past a tick) are served
    at once, so both servers keep the same cadence rules and differ only in what they do per frame."""

    kind = "audio"

    def __init__(self, clock: MediaClock, meter: FrameLagMeter) -> None:
        super().__init__()
        self.clock = clock
        self.meter = meter
        self.frames: deque[np.ndarray] = deque(maxlen=BACKLOG)  # (1, 960) mono int16
        self._pts = 0
        self._next_tick: int | None = None
        self._silence = np.zeros((1, FRAME), dtype=np.int16)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        last = self.clock.last
        if self._next_tick is not None and last is not None and last.index >= self._next_tick:
            self._next_tick += 1  # the sender came back late: serve the tick it missed now (as Talkwire's leg does)
        else:
            self._next_tick = (await self.clock.tick()).index + 1
        self.meter.frame()
        frame = av.AudioFrame.from_ndarray(self.frames.popleft() if self.frames else self._silence,
                                           format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.time_base = Fraction(1, RATE)
        frame.pts = self._pts
        self._pts += frame.samples
        return frame


def create_app(host_addresses: list[str]) -> Starlette:
    metrics = EchoMetrics()
    clock = MediaClock()
    clock.lag_observers.append(metrics.tick_lag.observe)
    peers: dict[str, RTCPeerConnection | None] = {}
    pumps: set[asyncio.Task[None]] = set()  # each call's inbound audio reader

    async def create_call(request: Request) -> JSONResponse:
        call_id = str(uuid.uuid4())
        peers[call_id] = None
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"call_id": call_id, "status": "queued", "worker_url": f"{base}/webrtc?call={call_id}"})

    async def offer(request: Request) -> JSONResponse:
        call_id = request.query_params.get("call", "")
        if call_id not in peers or peers[call_id] is not None:
            return JSONResponse({"error": {"code": "CALL_NOT_FOUND", "message": "No such call."}}, status_code=404)
        body = await request.json()
        pc = RTCPeerConnection(rtc_configuration([]))
        peers[call_id] = pc
        loop = asyncio.get_running_loop()
        track = EchoTrack(clock, FrameLagMeter(loop, metrics.frame_lag.labels("echo").observe))
        metrics.call_started("echo")

        async def pump(inbound: MediaStreamTrack) -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    frame = await inbound.recv()  # decoded Opus: packed s16, usually stereo
                    assert isinstance(frame, av.AudioFrame)
                    data = frame.to_ndarray()
                    channels = len(frame.layout.channels)
                    if channels > 1:
                        data = data.reshape(-1, channels).mean(axis=1, dtype=np.float32).astype(np.int16)
                    data = data.reshape(1, -1)
                    if data.shape[1] == FRAME:
                        track.frames.append(data)

        @pc.on("track")
        def on_track(inbound: MediaStreamTrack) -> None:
            if inbound.kind == "audio":
                task = loop.create_task(pump(inbound), name="echo-pump")
                pumps.add(task)
                task.add_done_callback(pumps.discard)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and peers.pop(call_id, None) is not None:
                metrics.call_finished("echo", "completed" if pc.connectionState == "closed" else "failed",
                                      EndReason.REMOTE_HANGUP)
                track.stop()
                await pc.close()

        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type="offer"))
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio":
                transceiver.sender.replaceTrack(track)
                transceiver.direction = "sendrecv"
        restrict_host_addresses(pc, host_addresses)
        await pc.setLocalDescription(await pc.createAnswer())
        return JSONResponse({"sdp": pc.localDescription.sdp, "type": "answer"})

    async def agents(request: Request) -> JSONResponse:
        return JSONResponse({"agents": [{"id": "echo", "name": "echo"}]})

    async def metrics_route(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        clock.start()
        metrics.start_loop_probe()
        try:
            yield
        finally:
            for pc in [p for p in peers.values() if p is not None]:
                await pc.close()
            await metrics.stop_loop_probe()
            await clock.stop()

    return Starlette(routes=[
        Route("/calls/create", create_call, methods=["POST"]),
        Route("/webrtc", offer, methods=["POST"]),
        Route("/assistant", agents, methods=["GET"]),
        Route("/metrics", metrics_route, methods=["GET"]),
    ], lifespan=lifespan)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the listening socket up front, so port 0 resolves to a real port before the banner is printed."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    sock = bind_socket(args.host, args.port)
    url = f"http://{args.host}:{sock.getsockname()[1]}"

    class Announcing(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            print(json.dumps({"url": url + "/", "publishable_key": "echo", "secret_key": "echo"}), flush=True)

    server = Announcing(uvicorn.Config(create_app([args.host]), log_level="warning", lifespan="on",
                                       access_log=False))
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])


if __name__ == "__main__":
    main()
