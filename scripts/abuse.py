"""Abuse a local Talkwire server the way an attacker holding the publishable key would, and show it holds.

Not a test: a script that prints, per flood, what was refused (by status and error code) and what got
through, and the server's resident memory (its own /metrics), database size and refusal counters
(`talkwire_refusals_total`) before and after. Every flood is bounded in count and in time.

    .venv/bin/python scripts/abuse.py                     # starts `talkwire serve --providers fake` itself
    .venv/bin/python scripts/abuse.py --quick             # a smoke run with small sizes
    .venv/bin/python scripts/abuse.py --url http://127.0.0.1:8080 --publishable-key pk_… --secret-key sk_… \\
        --data-dir ./data                                 # a server you started (loopback only)

The floods (skip some with --only):
- channel:  one real web call (aiortc): deep nesting, an oversized message, invalid UTF-8, non-finite and
            huge numbers, wrong types and a flood of client_context_update; the data channel's error messages
            are counted and the call must still be up afterwards;
- uploads:  --uploads files of --upload-kb each to that live call (POST /media/upload);
- calls:    POST /calls/create with the publishable key, --calls requests, --concurrency at a time;
- nested:   deeply nested JSON bodies (`[`×depth) to /calls/create (publishable) and /assistant (secret);
- slow:     --slow connections that send half a request line and never finish, held up to --seconds;
            meanwhile /health must still answer.

A server you start yourself keeps its own limits; the one this script starts has the defaults (the load
tester's switches that turn them off are not applied).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ipaddress
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from control_api.settings import Settings  # noqa: E402
from loadtest.server import NO_CALL_LIMITS, Target, create_agent, local_server  # noqa: E402
from loadtest.stats import parse_metrics, value  # noqa: E402
from loadtest.webrtc_peer import CallerError, WebRtcPeer  # noqa: E402

FLOODS = ("calls", "nested", "slow", "channel", "uploads")
REFUSAL_REASONS = ("rate_limited", "over_quota", "bad_message", "guard_refusal", "over_capacity")


@dataclass
class Tally:
    """Outcomes of one flood: status (and error code) → count."""

    name: str
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, response: httpx.Response | None, error: str | None = None) -> None:
        if response is None:
            self.outcomes[error or "no answer"] += 1
            return
        code = ""
        with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
            code = response.json()["error"]["code"]
        self.outcomes[f"{response.status_code}{' ' + code if code else ''}"] += 1

    def line(self) -> str:
        through = sum(n for k, n in self.outcomes.items() if k.startswith("2"))
        refusals = ("4", "error ", "refused", "cut", "503")
        refused = sum(n for k, n in self.outcomes.items() if k.startswith(refusals))
        parts = ", ".join(f"{k}: {n}" for k, n in sorted(self.outcomes.items()))
        return (f"{self.name:8} {self.seconds:6.1f} s  through {through:5}  refused {refused:5}  [{parts}]"
                + "".join(f"\n{'':10}{note}" for note in self.notes))


@dataclass
class Snapshot:
    rss_mb: float
    db_mb: float | None
    refusals: dict[str, float]
    errors_500: float = 0.0


def disk_mb(data_dir: Path) -> float:
    """The database (with its WAL) and the uploads."""
    files = [*data_dir.glob("talkwire.db*"), *(data_dir / "media").rglob("*")]
    return sum(p.stat().st_size for p in files if p.is_file()) / 2**20


async def snapshot(http: httpx.AsyncClient, base: str, data_dir: Path | None) -> Snapshot:
    text = (await http.get(f"{base}/metrics")).text
    samples = parse_metrics(text)
    db = await asyncio.to_thread(disk_mb, data_dir) if data_dir is not None else None
    return Snapshot(value(samples, "process_resident_memory_bytes") / 2**20, db,
                    {r: value(samples, "talkwire_refusals_total", reason=r) for r in REFUSAL_REASONS})


async def timed(tally: Tally, work: Awaitable[None]) -> Tally:
    started = time.monotonic()
    await work
    tally.seconds = time.monotonic() - started
    return tally


async def bounded(count: int, concurrency: int, seconds: float, one: Callable[[int], Awaitable[None]]) -> None:
    """`one(i)` for i < count, `concurrency` at a time, stopping at the deadline."""
    deadline = time.monotonic() + seconds
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            if time.monotonic() > deadline:
                return
            await one(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


# ---- the floods ------------------------------------------------------------------------------------

async def flood_calls(http: httpx.AsyncClient, t: Target, args: argparse.Namespace) -> Tally:
    tally = Tally("calls")

    async def one(_: int) -> None:
        try:
            tally.add(await http.post(f"{t.base_url}/calls/create", json={"agent_id": t.agent_id, "type": "web"},
                                      headers={"X-API-Key": t.key}))
        except httpx.HTTPError as exc:
            tally.add(None, type(exc).__name__)

    return await timed(tally, bounded(args.calls, args.concurrency, args.seconds, one))


async def flood_nested(http: httpx.AsyncClient, t: Target, args: argparse.Namespace) -> Tally:
    tally = Tally("nested")
    body = ("[" * args.depth + "]" * args.depth).encode()
    wrapped = b'{"agent_id": "x", "type": "web", "metadata": ' + body + b"}"
    targets = [("/calls/create", t.key, wrapped), ("/assistant", str(t.secret), body)]

    async def one(i: int) -> None:
        path, key, content = targets[i % 2]
        try:
            tally.add(await http.post(f"{t.base_url}{path}", content=content,
                                      headers={"X-API-Key": key, "Content-Type": "application/json"}))
        except httpx.HTTPError as exc:
            tally.add(None, type(exc).__name__)

    return await timed(tally, bounded(args.nested, args.concurrency, args.seconds, one))


async def flood_slow(http: httpx.AsyncClient, t: Target, args: argparse.Namespace) -> Tally:
    tally = Tally("slow")
    parts = urlsplit(t.base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    writers: list[asyncio.StreamWriter] = []
    readers: list[asyncio.StreamReader] = []
    started = time.monotonic()
    for _ in range(args.slow):
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            tally.outcomes[f"connect {type(exc).__name__}"] += 1
            continue
        writer.write(b"POST /calls/create HTTP/1.1\r\nHost: x\r\nContent-Le")  # and never the rest
        readers.append(reader)
        writers.append(writer)
    health = await http.get(f"{t.base_url}/health")
    tally.notes.append(f"/health with {len(writers)} slow connections open: {health.status_code}")

    async def cut_off(reader: asyncio.StreamReader) -> float | None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.read()  # the server closes (with or without a 408 first)
            return time.monotonic() - started
        return None

    waits = [asyncio.create_task(cut_off(r)) for r in readers]
    done, pending = await asyncio.wait(waits, timeout=args.seconds)
    closed = sorted(x for x in (task.result() for task in done) if x is not None)
    tally.outcomes["cut off by the server"] = len(closed)
    tally.outcomes["still open at the end"] = len(pending)
    if closed:
        tally.notes.append(f"cut off after {closed[0]:.1f}–{closed[-1]:.1f} s")
    for task in pending:
        task.cancel()
    for writer in writers:
        writer.close()
    tally.seconds = time.monotonic() - started
    return tally


async def call_abuse(http: httpx.AsyncClient, t: Target, args: argparse.Namespace) -> list[Tally]:
    """One real web call: the data-channel floods, then the upload flood, then whether the call is still up."""
    messages: list[dict[str, Any]] = []

    def on_message(_text: str, message: dict[str, Any] | None) -> None:
        if message is not None:
            messages.append(message)

    peer = WebRtcPeer(host_addresses=["127.0.0.1"], on_message=on_message)
    channel, uploads = Tally("channel"), Tally("uploads")
    try:
        await peer.create_call(http, t.base_url, t.agent_id, t.key)
        await peer.post_offer(http, str(peer.worker_url))
        await peer.wait_connected()
    except (TimeoutError, CallerError, httpx.HTTPError) as exc:
        channel.notes.append(f"no call: {exc!r}")
        await peer.close()
        return [channel, uploads]
    call_id = str(peer.call_id)
    started = time.monotonic()
    try:
        if "channel" in args.only:
            big = "x" * (args.message_kb * 1024)
            sent = [
                "[" * 2000 + "]" * 2000,
                json.dumps({"type": "client_context_update", "context": big}),
                '{"type": "client_context_update", "context": {"n": 1e400}}',  # not finite
                '{"type": "client_context_update", "context": {"n": 1' + "0" * 5000 + "}}",  # past int parsing
                json.dumps({"type": ["not", "a", "string"]}),
                "\ufffd not json",
            ]
            for text in sent:
                try:
                    peer.send_raw(text)
                except ValueError as exc:  # aiortc: over the max-message-size the server's SCTP offers
                    channel.outcomes["refused by the server's SCTP max-message-size"] += 1
                    channel.notes.append(str(exc))
            peer.channel.send(b"\xff\xfe invalid utf-8")
            flood = json.dumps({"type": "client_context_update", "context": "y" * (args.context_kb * 1024)})
            deadline = time.monotonic() + args.seconds
            for _ in range(args.messages):
                if time.monotonic() > deadline or peer.closed.is_set():
                    break
                peer.send_raw(flood)
                await asyncio.sleep(0)
                while peer.channel.bufferedAmount > 4 * 2**20:  # let SCTP drain  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            await asyncio.sleep(2.0)
            errors = collections.Counter(m.get("code", "?") for m in messages if m.get("type") == "error")
            channel.outcomes.update({f"error {code}": n for code, n in errors.items()})
            channel.outcomes["sent"] = len(sent) + 1 + args.messages
            channel.seconds = time.monotonic() - started
        if "uploads" in args.only:
            data = b"%PDF-" + b"0" * (args.upload_kb * 1024 - 5)
            u_started = time.monotonic()

            async def one(_: int) -> None:
                try:
                    uploads.add(await http.post(f"{t.base_url}/media/upload", params={"call_id": call_id},
                                                files={"file": ("f.pdf", data, "application/pdf")},
                                                data={"reason": "abuse"}))
                except httpx.HTTPError as exc:
                    uploads.add(None, type(exc).__name__)

            await bounded(args.uploads, min(args.concurrency, 8), args.seconds, one)
            uploads.seconds = time.monotonic() - u_started
        alive = not peer.closed.is_set() and peer.pc.connectionState == "connected"
        channel.notes.append(f"call {call_id} still connected after the floods: {alive}")
    finally:
        await peer.close()
    with contextlib.suppress(httpx.HTTPError, ValueError):
        await asyncio.sleep(1.0)
        record = await http.get(f"{t.base_url}/calls/{call_id}", headers={"X-API-Key": str(t.secret)})
        body = record.json()
        channel.notes.append(f"GET /calls/{{id}}: {record.status_code}, {len(record.content) / 1024:.0f} KB, "
                             f"status {body.get('status')}, end reason {body.get('end_reason')}")
    return [channel, uploads]


# ---- driving ---------------------------------------------------------------------------------------

def loopback_only(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = host == "localhost"
    if not ok:
        raise SystemExit(f"refusing to abuse {url}: loopback addresses only")


def default_limits() -> dict[str, str]:
    """The server's own defaults for the switches the load tester turns off."""
    defaults: dict[str, str] = {}
    for env in NO_CALL_LIMITS:
        name = env.removeprefix("TALKWIRE_").lower()
        if name in Settings.model_fields:
            defaults[env] = str(Settings.model_fields[name].default)
    return defaults


async def run(args: argparse.Namespace, target: Target, data_dir: Path | None) -> int:
    limits = httpx.Limits(max_connections=args.concurrency + 16)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        before = await snapshot(http, target.base_url, data_dir)
        tallies: list[Tally] = []
        if {"channel", "uploads"} & set(args.only):  # first: the calls flood uses up the key's call budget
            for tally in await call_abuse(http, target, args):
                if tally.name in args.only:
                    tallies.append(tally)
                    print(tally.line(), flush=True)
        for name, flood in (("calls", flood_calls), ("nested", flood_nested), ("slow", flood_slow)):
            if name in args.only:
                tallies.append(await flood(http, target, args))
                print(tallies[-1].line(), flush=True)
        await asyncio.sleep(1.0)
        after = await snapshot(http, target.base_url, data_dir)
    print(f"\nserver memory (RSS): {before.rss_mb:.0f} MB → {after.rss_mb:.0f} MB "
          f"({after.rss_mb - before.rss_mb:+.0f} MB)")
    if before.db_mb is not None and after.db_mb is not None:
        print(f"database and uploads on disk: {before.db_mb:.1f} MB → {after.db_mb:.1f} MB "
              f"({after.db_mb - before.db_mb:+.1f} MB)")
    print("refusals counted in /metrics: " + ", ".join(
        f"{r} +{after.refusals[r] - before.refusals[r]:.0f}" for r in REFUSAL_REASONS))
    server_errors = sum(n for tally in tallies for k, n in tally.outcomes.items() if k.startswith("500"))
    print(f"500 answers: {server_errors}")
    return 1 if server_errors else 0


async def main(args: argparse.Namespace) -> int:
    if args.url:
        loopback_only(args.url)
        if not (args.publishable_key and args.secret_key):
            raise SystemExit("--url needs --publishable-key and --secret-key")
        base = args.url.rstrip("/")
        agent = args.agent_id or await create_agent(base, args.secret_key)
        target = Target(base, args.publishable_key, agent, "talkwire", None, None, secret=args.secret_key)
        return await run(args, target, args.data_dir)
    with tempfile.TemporaryDirectory(prefix="talkwire-abuse-") as work:
        async with local_server("talkwire", Path(work), env=default_limits()) as target:
            data_dir = next(Path(work).glob("*/talkwire.db"), None)  # noqa: ASYNC240 (once, small)
            return await run(args, target, data_dir.parent if data_dir else None)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--url", help="a running server (loopback only); default: start one")
    parser.add_argument("--publishable-key", help="with --url: the publishable key")
    parser.add_argument("--secret-key", help="with --url: a secret key (creates the agent, reads the call)")
    parser.add_argument("--agent-id", help="with --url: the agent to call (default: one is created)")
    parser.add_argument("--data-dir", type=Path, help="with --url: the server's data directory, for its size")
    parser.add_argument("--only", default=",".join(FLOODS), help=f"floods to run, of {','.join(FLOODS)}")
    parser.add_argument("--seconds", type=float, default=30.0, help="time limit of each flood")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at once")
    parser.add_argument("--calls", type=int, default=5000, help="POST /calls/create requests")
    parser.add_argument("--nested", type=int, default=2000, help="nested-JSON requests")
    parser.add_argument("--depth", type=int, default=100_000, help="nesting depth of those bodies")
    parser.add_argument("--slow", type=int, default=300, help="slow, never-finished requests")
    parser.add_argument("--messages", type=int, default=1000, help="client_context_update messages in the flood")
    parser.add_argument("--context-kb", type=int, default=200, help="size of each of those")
    parser.add_argument("--message-kb", type=int, default=1024, help="size of the one oversized message")
    parser.add_argument("--uploads", type=int, default=100, help="uploads to the live call")
    parser.add_argument("--upload-kb", type=int, default=4096, help="size of each upload")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a minute or so")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(FLOODS)
    if unknown:
        parser.error(f"unknown floods: {', '.join(sorted(unknown))}")
    if args.quick:
        args.seconds, args.concurrency, args.calls, args.nested, args.depth = 15.0, 8, 200, 50, 5000
        args.slow, args.messages, args.context_kb, args.message_kb = 30, 50, 200, 300
        args.uploads, args.upload_kb = 30, 1024
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
