"""Test helpers for the campaign tests: one sipp process as a trunk full of callees (tests/sipp/uas_campaign.xml,
the dialled number picks the callee), what sipp saw (every INVITE dialog with its times, caller ID and callee),
and the campaign API calls the tests share."""
from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sipp.harness import SCENARIOS, SIPP, free_udp_port, wait_listening

ALL_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ANSWER, BUSY, NO_ANSWER, LATE, TALK = "+1555111", "+1555222", "+1555333", "+1555444", "+1555555"

_BLOCK = re.compile(r"^-{20,}\s*(.*)$", re.M)
_STAMP = re.compile(r"(\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d\.\d+)")  # sipp's local time


@dataclass
class Dialog:
    """One INVITE dialog as sipp saw it: when the INVITE came, when its last message went by."""

    call_id: str
    callee: str  # the Request-URI user
    caller: str  # the From user (the caller ID)
    start: float  # epoch seconds
    end: float
    messages: list[str] = field(default_factory=list)  # first lines, in order

    @property
    def answered(self) -> bool:
        return any(line.startswith("SIP/2.0 200") and i < len(self.messages) - 1 and
                   self.messages[i + 1].startswith("ACK") for i, line in enumerate(self.messages))


def _header(message: str, name: str) -> str:
    found = re.search(rf"^{name}:\s*(.*)$", message, re.M | re.I)
    return found.group(1).strip() if found else ""


def _user(text: str) -> str:
    found = re.search(r"sip:([^@;>]+)@", text)
    return found.group(1) if found else ""


def _prepare(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / "speech.ulaw").exists():
        (workdir / "speech.ulaw").write_bytes(b"\xff" * 8000)


@dataclass
class CampaignTrunk:
    """sipp as a UDP trunk on 127.0.0.1 taking any number of calls at once."""

    proc: asyncio.subprocess.Process
    port: int
    workdir: Path

    @classmethod
    async def start(cls, workdir: Path) -> CampaignTrunk:
        """sipp in `workdir`; what the talking callee says is `workdir/speech.ulaw` (silence unless there)."""
        assert SIPP is not None
        _prepare(workdir)
        port, media = free_udp_port(), free_udp_port(pair=True)
        proc = await asyncio.create_subprocess_exec(
            SIPP, "-sf", str(SCENARIOS / "uas_campaign.xml"), "-i", "127.0.0.1", "-mi", "127.0.0.1",
            "-p", str(port), "-mp", str(media), "-nostdin", "-trace_msg", "-trace_err", "-max_recv_loops", "10000",
            cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await wait_listening(port, proc)
        return cls(proc, port, workdir)

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.port};transport=udp"

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()

    def log(self) -> str:
        return "\n".join(p.read_text("utf-8", "replace") for p in self.workdir.glob("*_messages.log"))

    def dialogs(self) -> list[Dialog]:
        """Every dialog sipp saw, by the time its INVITE came."""
        text = self.log()
        marks = list(_BLOCK.finditer(text))
        found: dict[str, Dialog] = {}
        for i, mark in enumerate(marks):
            stamp = _STAMP.search(mark.group(1))
            if stamp is None:
                continue
            at = datetime.strptime(f"{stamp.group(1)} {stamp.group(2)}", "%Y-%m-%d %H:%M:%S.%f").timestamp()
            body = text[mark.end():marks[i + 1].start() if i + 1 < len(marks) else len(text)]
            lines = [line for line in body.strip().splitlines()[1:] if line.strip()]  # after "UDP message …"
            if not lines:
                continue
            first, message = lines[0].strip(), "\n".join(lines)
            call_id = _header(message, "Call-ID")
            if not call_id:
                continue
            dialog = found.get(call_id)
            if dialog is None:
                if not first.startswith("INVITE "):
                    continue
                dialog = found[call_id] = Dialog(call_id, _user(first), _user(_header(message, "From")), at, at)
            dialog.end = max(dialog.end, at)
            dialog.messages.append(first)
        return sorted(found.values(), key=lambda d: d.start)


def most_at_once(dialogs: Iterable[Dialog], since: float = float("-inf"), until: float = float("inf")) -> int:
    """The most dialogs in progress at any one moment between `since` and `until`."""
    edges: list[tuple[float, int]] = []
    for d in dialogs:
        start, end = max(d.start, since), min(d.end, until)
        if start <= end:
            edges += [(start, 1), (end, -1)]
    best = now = 0
    for _, step in sorted(edges, key=lambda e: (e[0], -e[1])):
        now += step
        best = max(best, now)
    return best


def campaign_body(agent_id: str, phones: list[str], **fields: Any) -> dict[str, Any]:
    return {"name": "Campaign test", "agent_id": agent_id, "timezone": "UTC", "call_hours_start": "00:00:00",
            "call_hours_end": "00:00:00", "call_days": ALL_DAYS, "call_timeout_seconds": 5,
            "candidates": [{"name": f"Person {i}", "phone": p} for i, p in enumerate(phones)], **fields}
