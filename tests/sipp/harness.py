"""Test helpers for the SIP tests: real sipp / baresip processes on 127.0.0.1, speech made with
espeak-ng + sox, and an honest test double of an agent (plays a known signal, records what it hears)."""
from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from signalling.sip.leg import SipLeg

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the G.711 reference; Python 3.11 has it

SCENARIOS = Path(__file__).resolve().parent
SIPP = shutil.which("sipp")
BARESIP = shutil.which("baresip")
BARESIP_MODULES = "/usr/lib/baresip/modules"
HAVE_SPEECH_TOOLS = bool(shutil.which("espeak-ng") and shutil.which("sox"))


def free_udp_port(pair: bool = False) -> int:
    """A free UDP port on 127.0.0.1 (even, with the next one free too, when `pair`)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not pair:
            return port
        if port % 2 or port + 3 > 65535:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
                c.bind(("127.0.0.1", port + 2))
            return port
        except OSError:
            continue
    raise RuntimeError("no free UDP port")


def free_sip_listen_port() -> int:
    """A port for baresip's `sip_listen`: libre binds UDP and TCP on it and TLS (TCP) on the next port, and
    baresip exits ("SIP/TLS transport failed: Address already in use") when any of them is taken. So all
    three are probed by binding, not only the UDP one."""
    for _ in range(200):
        port = free_udp_port()
        if port + 1 > 65535:
            continue
        probes: list[socket.socket] = []
        try:
            for kind, candidate in ((socket.SOCK_DGRAM, port), (socket.SOCK_STREAM, port), (socket.SOCK_STREAM, port + 1)):
                probe = socket.socket(socket.AF_INET, kind)
                probes.append(probe)
                probe.bind(("127.0.0.1", candidate))
            return port
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError("no free UDP+TCP port pair for baresip")


def port_in_use(port: int, kind: socket.SocketKind = socket.SOCK_DGRAM) -> bool:
    """Whether something holds 127.0.0.1:`port` for UDP (`SOCK_DGRAM`) or TCP (`SOCK_STREAM`)."""
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


async def wait_listening(port: int, proc: asyncio.subprocess.Process, timeout: float = 10.0, *,
                         tcp_ports: tuple[int, ...] = ()) -> None:
    """Until the peer has bound UDP `port` and TCP `tcp_ports` (baresip binds its TLS port after its UDP one:
    a call dialled in between was refused once on a loaded machine)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not port_in_use(port) or not all(port_in_use(tcp, socket.SOCK_STREAM) for tcp in tcp_ports):
        if proc.returncode is not None or loop.time() > deadline:
            out = await proc.stdout.read() if proc.returncode is not None and proc.stdout else b""
            raise RuntimeError(f"peer did not bind UDP port {port} and TCP {tcp_ports}: "
                               f"{out.decode('utf-8', 'replace')[-2000:]}")
        await asyncio.sleep(0.05)


@dataclass
class Sipp:
    proc: asyncio.subprocess.Process
    port: int
    media_port: int
    workdir: Path
    output: str = ""

    async def wait(self, timeout: float = 60.0) -> int:
        try:
            out, _ = await asyncio.wait_for(self.proc.communicate(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            out, _ = await self.proc.communicate()
        self.output = out.decode("utf-8", "replace")
        return self.proc.returncode if self.proc.returncode is not None else -1

    def messages(self) -> str:
        """What sipp logged with -trace_msg (every message sent and received)."""
        logs = list(self.workdir.glob("*_messages.log"))
        return "\n".join(p.read_text("utf-8", "replace") for p in logs)

    def errors(self) -> str:
        logs = list(self.workdir.glob("*_errors.log"))
        return "\n".join(p.read_text("utf-8", "replace") for p in logs)

    def explain(self) -> str:
        return f"sipp output:\n{self.output[-3000:]}\nerrors:\n{self.errors()[-3000:]}\nmessages:\n{self.messages()[-6000:]}"


async def start_sipp(workdir: Path, scenario: str, *, remote: str | None = None, keys: dict[str, str] | None = None,
                     extra: list[str] | None = None) -> Sipp:
    """Run sipp with a scenario from tests/sipp (or a built-in `-sn` name), as the issue prescribes."""
    assert SIPP is not None
    port = free_udp_port()
    media_port = free_udp_port(pair=True)
    args = [SIPP]
    if scenario.endswith(".xml"):
        args += ["-sf", str(SCENARIOS / scenario)]
    else:
        args += ["-sn", scenario]
    args += ["-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(port), "-mp", str(media_port),
             "-m", "1", "-nostdin", "-timeout", "45s", "-timeout_error", "-trace_msg", "-trace_err"]
    for key, value in (keys or {}).items():
        args += ["-key", key, value]
    args += extra or []
    if remote:
        args.append(remote)
    proc = await asyncio.create_subprocess_exec(*args, cwd=workdir, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sipp = Sipp(proc, port, media_port, workdir)
    if not remote:
        await wait_listening(port, proc)
    return sipp


def make_speech(text: str, workdir: Path, name: str = "speech") -> tuple[Path, Path, np.ndarray]:
    """espeak-ng → sox: (8 kHz int16 WAV, headerless mu-law file, the mu-law file decoded by audioop)."""
    raw = workdir / f"{name}_22k.wav"
    wav = workdir / f"{name}.wav"
    ulaw = workdir / f"{name}.ulaw"
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(wav)], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-t", "raw", "-r", "8000", "-c", "1", "-e", "mu-law", str(ulaw)],
                   check=True, capture_output=True)
    decoded = np.frombuffer(audioop.ulaw2lin(ulaw.read_bytes(), 2), dtype=np.int16)
    return wav, ulaw, decoded


def make_alaw(wav: Path, workdir: Path, name: str = "speech") -> np.ndarray:
    """The 8 kHz WAV as a headerless A-law file `<name>.alaw`; returns it decoded by audioop."""
    alaw = workdir / f"{name}.alaw"
    subprocess.run(["sox", str(wav), "-t", "raw", "-r", "8000", "-c", "1", "-e", "a-law", str(alaw)],
                   check=True, capture_output=True)
    return np.frombuffer(audioop.alaw2lin(alaw.read_bytes(), 2), dtype=np.int16)


async def transcribe_8k(samples: np.ndarray) -> str:
    """The product's local STT (Whisper via agent_runtime's WhisperSTT) on 8 kHz phone audio."""
    from agent_runtime.providers.whisper import WhisperSTT
    from media.resample import resample

    return (await WhisperSTT().transcribe(resample(samples, 8000, 16000))).lower()


def tone(seconds: float, freq: float = 440.0, rate: int = 8000, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude).astype(np.int16)


def find_exact(haystack: np.ndarray, needle: np.ndarray) -> int:
    """Offset of `needle` inside `haystack` (exact samples), or -1."""
    n = len(needle)
    if n == 0 or len(haystack) < n:
        return -1
    # Candidate offsets where the first 8 samples match, then verify fully.
    windows = np.lib.stride_tricks.sliding_window_view(haystack, 8)
    hits = np.nonzero((windows == needle[:8]).all(axis=1))[0]
    for off in hits:
        if off + n <= len(haystack) and np.array_equal(haystack[off:off + n], needle):
            return int(off)
    return -1


@dataclass
class AgentDouble:
    """Test double for the conversation: plays `say` into the leg once, records every inbound frame
    and every event until the leg ends (or `hangup_after` seconds of recording, then hangs up)."""

    leg: SipLeg
    say: np.ndarray | None = None
    hangup_after: float | None = None
    heard: list[np.ndarray] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)

    async def run(self) -> str:
        if self.say is not None:
            self.leg.outbound.push(self.say)
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + self.hangup_after if self.hangup_after is not None else None
        while True:
            timeout = None if stop_at is None else max(0.0, stop_at - loop.time())
            try:
                frame = await asyncio.wait_for(self.leg.inbound.get(), timeout)
            except asyncio.TimeoutError:
                await self.leg.hangup("agent_hangup")
                break
            if frame is None:
                break
            self.heard.append(frame.samples)
        while not self.leg.events.empty():
            self.events.append(self.leg.events.get_nowait())
        return await self.leg.ended

    @property
    def recording(self) -> np.ndarray:
        return np.concatenate(self.heard) if self.heard else np.zeros(0, dtype=np.int16)



@asynccontextmanager
async def running_baresip(folder: Path, account_user: str) -> AsyncIterator[tuple[int, Path, asyncio.subprocess.Process]]:
    """baresip with one auto-answer account `sip:<account_user>@127.0.0.1` on a free port, configured in
    `folder`. Its input is 60 s of silence (it hangs up when its input file ends); its sndfile module records
    both directions into `folder/rec`. Yields (SIP port, recording folder, process)."""
    port = free_sip_listen_port()
    rtp = free_udp_port(pair=True)
    (folder / "rec").mkdir()
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(folder / "silence.wav"), "trim", "0", "60"],
                   check=True, capture_output=True)
    (folder / "config").write_text(
        "poll_method epoll\n"
        f"sip_listen 127.0.0.1:{port}\n"
        "net_interface 127.0.0.1\n"
        f"rtp_ports {rtp}-{rtp + 1}\n"
        f"audio_source aufile,{folder / 'silence.wav'}\n"
        "audio_player aubridge,nil\n"
        "audio_alert aubridge,nil\n"
        f"module_path {BARESIP_MODULES}\n"
        "module g711.so\nmodule aufile.so\nmodule aubridge.so\nmodule sndfile.so\n"
        "module_app account.so\nmodule_app menu.so\n"
        f"snd_path {folder / 'rec'}\n"
    )
    (folder / "accounts").write_text(f"<sip:{account_user}@127.0.0.1>;regint=0;answermode=auto\n")
    proc = await asyncio.create_subprocess_exec(BARESIP, "-f", str(folder), stdin=subprocess.DEVNULL,
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        await wait_listening(port, proc)
        yield port, folder / "rec", proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
