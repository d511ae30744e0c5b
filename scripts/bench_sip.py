"""Benchmark: concurrent SIP calls on one core, RTP both ways, the full agent pipeline with FAKE providers.

sipp (on another core) answers N calls from Talkwire's SIP user agent and streams looped speech into
each (tests/sipp/uas_bench.xml); every call runs a real `Conversation` (WebRTC VAD, turn-taking, the
instant FAKE STT/LLM/TTS, resampling to and from 8 kHz), so the agent keeps replying; or, with
`--agent listener`, only a consumer of the leg (the SIP layer's own cost). This process is pinned to
one core. Reported over a steady window after all calls are up:

- CPU per call: this process's CPU time / wall time / calls (percent of one core);
- outbound lag (the target's figure): each RTP packet's send time against its own call's 20 ms grid,
  p50 / p99 / max over every packet of every call. The grid of a call is anchored at its earliest
  packet (the server's `talkwire_outbound_frame_lag_seconds` meter, `control_api.metrics.FrameLagMeter`):
  a call whose packets always leave 3 ms into the tick has a steady 20 ms cadence and measures 0; a
  packet that leaves late because the loop or the tick fell behind measures how late it was;
- tick completion: per tick, from its due time until the last call's packet of the tick was sent (how
  long one tick's sending takes at this N, plus the clock's wake-up), and the clock's own wake-up lag.

    .venv/bin/python scripts/bench_sip.py --calls 400 --seconds 20
    .venv/bin/python scripts/bench_sip.py --quick            # a smoke run (the tests run it)
    .venv/bin/python scripts/bench_sip.py --micro --calls 400  # the media tick alone, CPU time per tick

`--micro` is for a machine too busy for lag figures (the full run reports how long it waited for its core): no
sipp, no agent, no clock; N calls' RTP sessions on loopback, one peer socket sending each call one packet per
tick, and the media engine's `tick()` called back to back. It reports the process CPU time per tick and per call
and packet, which other programs on the core do not inflate the way they inflate wall-clock lag.

Target (issue 5): at least 400 concurrent calls on one core with p99 lag under 5 ms.
Prints a human summary and, with --json, one JSON object on the last line.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent_runtime.agent_config import AgentConfig  # noqa: E402
from agent_runtime.call import Call  # noqa: E402
from agent_runtime.conversation import Conversation  # noqa: E402
from agent_runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS  # noqa: E402
from control_api.metrics import FrameLagMeter  # noqa: E402
from media.pacing import settle_heap  # noqa: E402
from signalling.sip.ua import SipUserAgent  # noqa: E402

SCENARIO = ROOT / "tests" / "sipp" / "uas_bench.xml"
SPEECH = "Hello, I would like to know when my order will arrive. It was placed last Tuesday."


def make_speech(workdir: Path) -> float:
    """speech.ulaw (headerless 8 kHz mu-law) for sipp: espeak-ng speech followed by a pause; returns its
    length in seconds (one turn of every caller)."""
    raw = workdir / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), SPEECH], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-t", "raw", "-r", "8000", "-c", "1", "-e", "mu-law",
                    str(workdir / "speech.ulaw"), "pad", "0", "2"], check=True, capture_output=True)
    return (workdir / "speech.ulaw").stat().st_size / 8000


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin(cpu: int | None) -> str:
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    try:
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except OSError as exc:
        return f"not pinned ({exc})"


async def listener(leg) -> str:
    """The SIP layer alone: drain the caller's audio and keep a reply queued, without any agent work."""
    reply = (np.sin(np.arange(8000) * 2 * np.pi * 220 / 8000) * 6000).astype(np.int16)
    while True:
        if leg.outbound.queued_samples < 1600:
            leg.outbound.push(reply)
        frame = await leg.inbound.get()
        if frame is None:
            return await leg.ended


def meter_packets(legs: list) -> list[float]:
    """From now on, note every RTP packet's lag against its call's own 20 ms grid (see the docstring)."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    for leg in legs:
        rtp = leg.rtp
        if rtp._sendto is None:
            continue

        meter = FrameLagMeter(loop, lags.append)

        def sendto(data: bytes, addr: tuple, _send=rtp._sendto, _frame=meter.frame) -> int:
            sent = _send(data, addr)
            _frame()
            return sent

        rtp._sendto = sendto
    return lags


async def drain_updates(call: Call) -> None:
    """Take the conversation's updates as their owner must (the server's CallSession writes them to the
    call record; here they are dropped), so they do not pile up in memory."""
    while True:
        await call.updates.get()


async def bench(calls: int, seconds: float, warmup: float, cpu: int | None, peer_cpu: int | None,
                agent: str = "conversation", spread: float | None = None) -> dict:
    pinned = pin(cpu)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8 * calls + 256)), hard))
    workdir = Path(tempfile.mkdtemp(prefix="bench_sip_"))
    turn_seconds = make_speech(workdir)
    port, media_port = free_port(), free_port()
    sipp_cmd = [shutil.which("sipp") or "sipp", "-sf", str(SCENARIO), "-i", "127.0.0.1", "-mi", "127.0.0.1",
                "-p", str(port), "-mp", str(media_port), "-m", str(calls), "-nostdin",
                "-timeout", str(int(seconds + warmup + 120)), "-max_socket", str(4 * calls + 64)]
    if peer_cpu is not None and shutil.which("taskset"):
        sipp_cmd = ["taskset", "-c", str(peer_cpu)] + sipp_cmd
    sipp = await asyncio.create_subprocess_exec(*sipp_cmd, cwd=workdir, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await asyncio.sleep(0.5)
    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999))
    settle_heap()  # as the server does once it has started
    legs, llms, tasks = [], [], []
    try:
        # Calls start spread over one turn of the looped speech, as independent callers would be: started
        # together, every caller would end a turn in the same tick and every agent reply at once.
        spread = turn_seconds if spread is None else spread
        for i in range(calls):
            leg = await ua.dial(f"+1555{i:07d}", f"sip:127.0.0.1:{port}")
            legs.append(leg)
            await asyncio.sleep(spread / calls)
        results = await asyncio.wait_for(asyncio.gather(*(leg.answered for leg in legs)), 60)
        answered = sum(r.answered for r in results)
        for leg in legs:
            if agent == "listener":
                tasks.append(asyncio.ensure_future(listener(leg)))
                continue
            llm = FakeLLM()
            llms.append(llm)
            config = AgentConfig(stt=FakeSTT("when will my order arrive"), llm=llm, tts=FakeTTS(),
                                 welcome_message="Hello! Thanks for calling. How can I help you today?",
                                 partial_interval_ms=0)
            call = Call(leg, Conversation(leg, config, direction="outbound"))
            tasks.append(call.start())
            tasks.append(asyncio.ensure_future(drain_updates(call)))
        await asyncio.sleep(warmup)
        clock_lags: list[float] = []
        ua.clock.lag_observers.append(clock_lags.append)
        tick_lags: list[float] = []
        ua.media.tick_observer = tick_lags.append
        packet_lags = meter_packets(legs)
        sent0 = sum(leg.rtp.packets_sent for leg in legs)
        received0 = sum(leg.rtp.packets_received for leg in legs)
        cpu0, wall0, waited0 = time.process_time(), time.perf_counter(), runqueue_wait()
        await asyncio.sleep(seconds)
        cpu1, wall1, waited1 = time.process_time(), time.perf_counter(), runqueue_wait()
        sent = sum(leg.rtp.packets_sent for leg in legs) - sent0
        received = sum(leg.rtp.packets_received for leg in legs) - received0
        ua.media.tick_observer = None
        ticks = np.array(tick_lags) * 1000
        lags = np.array(packet_lags) * 1000
        wake = np.array(clock_lags) * 1000
        replies = sum(len(llm.requests) for llm in llms)
        up = sum(not leg.ended.done() for leg in legs)
    finally:
        for leg in legs:
            if not leg.ended.done():
                await leg.hangup("agent_hangup")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ua.close()
        try:
            await asyncio.wait_for(sipp.wait(), 30)
        except TimeoutError:
            sipp.kill()
            await sipp.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    wall = wall1 - wall0
    cpu_share = (cpu1 - cpu0) / wall
    return {
        "calls": calls,
        "agent": agent,
        "answered": answered,
        "up_during_window": up,
        "seconds": round(wall, 2),
        "pinning": pinned,
        "cpu_percent_of_one_core": round(100 * cpu_share, 1),
        "cpu_percent_per_call": round(100 * cpu_share / max(calls, 1), 3),
        "packets_sent_per_call_per_s": round(sent / max(calls, 1) / wall, 1),
        "packets_received_per_call_per_s": round(received / max(calls, 1) / wall, 1),
        "packets_metered": int(len(lags)),
        "lag_ms_p50": pct(lags, 50),
        "lag_ms_p99": pct(lags, 99),
        "lag_ms_max": round(float(lags.max()), 3) if len(lags) else None,
        "ticks": int(len(ticks)),
        "tick_completion_ms_p50": pct(ticks, 50),
        "tick_completion_ms_p99": pct(ticks, 99),
        "tick_completion_ms_max": round(float(ticks.max()), 3) if len(ticks) else None,
        "runqueue_wait_ms": (round((waited1 - waited0) * 1000, 1)
                             if waited0 is not None and waited1 is not None else None),
        "clock_wake_lag_ms_p50": pct(wake, 50),
        "clock_wake_lag_ms_p99": pct(wake, 99),
        "llm_replies": replies,
        "start_spread_s": round(spread, 2),
    }


async def micro(calls: int, ticks: int, cpu: int | None) -> dict:
    """The media tick alone: CPU time per tick with `calls` calls each receiving and sending one packet per tick."""
    import socket
    import struct

    from media import g711
    from signalling.sip.dialog import Dialog
    from signalling.sip.leg import SipLeg
    from signalling.sip.media_engine import RtpMediaEngine
    from signalling.sip.message import NameAddr
    from signalling.sip.rtp import RtpSession
    from signalling.sip.sdp import Negotiated

    pinned = pin(cpu)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * calls + 256)), hard))

    class Control:
        async def hangup_leg(self, leg: SipLeg, reason: str) -> None: ...
        async def transfer_leg(self, leg: SipLeg, target: str) -> None: ...
        async def send_dtmf(self, leg: SipLeg, digits: str) -> None: ...

    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    peer.setblocking(False)
    peer_address = peer.getsockname()
    engine = RtpMediaEngine(clock=None)  # type: ignore[arg-type]  # tick() is driven here, not by a clock
    legs = []
    heard = [0]
    for i in range(calls):
        rtp = await RtpSession.open("127.0.0.1", (20000, 29999))
        rtp.signalling_ip = "127.0.0.1"
        leg = SipLeg(Control(), direction="outbound", rtp=rtp, remote_number=str(i), local_number="bench",
                     dialog=Dialog(f"micro-{i}", NameAddr("", "sip:a@b", {"tag": "1"}), NameAddr("", "sip:c@d", {}),
                                   "sip:c@d", 1))
        leg.consume(lambda frame: heard.__setitem__(0, heard[0] + 1))
        if hasattr(rtp, "confirm"):
            rtp.confirm()  # (the stack from before the dialog had to be confirmed has no such step)
        engine.start_leg(leg, Negotiated(peer_address[0], peer_address[1], g711.PCMU, g711.PCMU, 101, "sendrecv"))
        legs.append(leg)
    header = struct.Struct("!BBHII")
    payload = b"\xff" * 160
    targets = [("127.0.0.1", leg.rtp.local_port) for leg in legs]
    loop = asyncio.get_running_loop()

    def drain() -> None:
        try:
            while True:
                peer.recv(2048)
        except BlockingIOError:
            pass

    tick_cpu: list[float] = []
    for t in range(ticks + 10):
        for i in range(calls):
            peer.sendto(header.pack(0x80, 0, t & 0xFFFF, t * 160, 0x1000 + i) + payload, targets[i])
        started = time.process_time()
        engine.tick(loop.time())
        if t >= 10:  # the first ticks fill the jitter buffers
            tick_cpu.append(time.process_time() - started)
        drain()
    for leg in legs:
        leg.rtp.close()
    peer.close()
    per_tick = np.array(tick_cpu) * 1e6
    return {
        "mode": "micro",
        "calls": calls,
        "ticks": ticks,
        "pinning": pinned,
        "cpu_us_per_tick_median": round(float(np.median(per_tick)), 1),
        "cpu_us_per_tick_p90": round(float(np.percentile(per_tick, 90)), 1),
        "cpu_us_per_tick_p10": round(float(np.percentile(per_tick, 10)), 1),  # the least disturbed ticks
        "cpu_us_per_call_per_tick": round(float(np.median(per_tick)) / calls, 2),
        "cpu_percent_of_one_core_at_50_ticks_per_s": round(float(np.median(per_tick)) * 50 / 1e4, 1),
        "frames_heard": heard[0],
        "packets_sent": sum(leg.rtp.packets_sent for leg in legs),
    }


def runqueue_wait() -> float | None:
    """Seconds this process's threads spent runnable but waiting for a CPU (Linux schedstat): the time
    other programs on our core took from us, which shows up as lag no code of ours caused."""
    try:
        total = 0
        for task in Path("/proc/self/task").iterdir():
            total += int((task / "schedstat").read_text().split()[1])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        return None


def pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after all calls are up, before measuring")
    parser.add_argument("--cpu", type=int, default=0, help="core to pin this process to (-1: no pinning)")
    parser.add_argument("--peer-cpu", type=int, default=1, help="core for sipp (-1: no pinning)")
    parser.add_argument("--agent", choices=["conversation", "listener"], default="conversation",
                        help="conversation: the real Conversation on FAKE providers; listener: the SIP layer "
                             "alone (drain inbound audio, keep a reply queued)")
    parser.add_argument("--spread", type=float, default=None,
                        help="seconds over which the calls are started (default: one turn of the looped speech)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 calls, 2 s")
    parser.add_argument("--micro", action="store_true",
                        help="the media tick alone (no sipp, no agent): CPU time per tick; see above")
    parser.add_argument("--ticks", type=int, default=2000, help="--micro: ticks to time")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on the last line")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.seconds, args.warmup = 5, 2.0, 1.0
        args.spread = 0.5 if args.spread is None else args.spread
    cpu = None if args.cpu < 0 else args.cpu
    if args.micro:
        figures = asyncio.run(micro(args.calls, args.ticks, cpu))
        print(f"{figures['calls']} calls, {figures['ticks']} ticks ({figures['pinning']}): CPU per tick median "
              f"{figures['cpu_us_per_tick_median']} us, p10 {figures['cpu_us_per_tick_p10']} us, "
              f"p90 {figures['cpu_us_per_tick_p90']} us; "
              f"{figures['cpu_us_per_call_per_tick']} us per call per tick (receive, decode, encode, send): "
              f"{figures['cpu_percent_of_one_core_at_50_ticks_per_s']}% of a core at 50 ticks/s")
        if args.json:
            print(json.dumps(figures))
        return
    peer_cpu = None if args.peer_cpu < 0 or (os.cpu_count() or 1) < 2 else args.peer_cpu
    result = asyncio.run(bench(args.calls, args.seconds, args.warmup, cpu, peer_cpu, args.agent, args.spread))
    print(f"{result['answered']}/{result['calls']} calls answered ({result['agent']}), "
          f"{result['up_during_window']} up through the window "
          f"({result['pinning']}; started over {result['start_spread_s']} s)")
    print(f"CPU: {result['cpu_percent_of_one_core']}% of one core, {result['cpu_percent_per_call']}% per call; "
          f"waited {result['runqueue_wait_ms']} ms for the CPU while other programs ran on it")
    print(f"RTP per call: {result['packets_sent_per_call_per_s']} pkt/s out, "
          f"{result['packets_received_per_call_per_s']} pkt/s in")
    print(f"outbound RTP lag vs each call's 20 ms grid over {result['packets_metered']} packets: "
          f"p50 {result['lag_ms_p50']} ms, p99 {result['lag_ms_p99']} ms, max {result['lag_ms_max']} ms")
    print(f"tick completion (due -> last call's packet sent) over {result['ticks']} ticks: "
          f"p50 {result['tick_completion_ms_p50']} ms, p99 {result['tick_completion_ms_p99']} ms, "
          f"max {result['tick_completion_ms_max']} ms; the clock's own wake-up: "
          f"p50 {result['clock_wake_lag_ms_p50']} ms, p99 {result['clock_wake_lag_ms_p99']} ms")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
