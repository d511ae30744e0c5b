"""The load test's output: live progress, the summary table, and the PNG/HTML report (matplotlib, Agg)."""
from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

LATENCIES = (("setup_ms", "set-up"), ("first_audio_ms", "first agent audio"),
             ("response_latency_ms", "response (end of speech → agent audio)"),
             ("barge_in_latency_ms", "barge-in (speak over → agent audio stops)"))


@contextmanager
def live_progress(console: Console) -> Iterator[Callable[[str], Callable[[dict[int, str], int], None]]]:
    """Yields `progress(label)` → a callback the callers report their states to (one bar per step)."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[states]}"),
                  TimeElapsedColumn(), console=console, transient=False, disable=not console.is_terminal) as bar:
        def progress(label: str) -> Callable[[dict[int, str], int], None]:
            task = bar.add_task(label, total=None, states="")

            def update(states: dict[int, str], calls: int) -> None:
                counts = Counter(states.values())
                done = counts["ok"] + counts["failed"]
                shown = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
                bar.update(task, total=calls, completed=done, states=shown)
            return update
        yield progress


def print_summary(console: Console, result: dict[str, Any]) -> None:
    summary, server = result["summary"], result.get("server", {})
    table = Table(title="talkwire loadtest", show_lines=False)
    table.add_column("measure")
    for col in ("p50", "p95", "p99", "max"):
        table.add_column(col + " ms", justify="right")
    for key, label in LATENCIES:
        row = summary.get(key) or {}
        table.add_row(label, *("-" if row.get(c) is None else f"{row[c]:.0f}" for c in ("p50", "p95", "p99", "max")))
    console.print(table)
    facts = Table(show_header=False, box=None)
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("calls ok / failed", f"{summary['calls_ok']} / {summary['calls_failed']}")
    for failure in summary.get("failures", []):
        facts.add_row("  failure", failure)
    facts.add_row("turns", str(summary.get("turns")))
    wer = "-" if summary.get("wer") is None else f"{summary['wer']:.1%}"
    config = result.get("config", {})
    if config.get("providers") == "fake" and not config.get("against") and summary.get("wer") is not None:
        wer += " (FAKE STT answers a fixed transcript: this measures the plumbing, not recognition)"
    facts.add_row("transcript WER", wer)
    gaps = f"{summary.get('audio_gaps')} / {summary.get('max_gap_ms') or 0:.0f} ms"
    facts.add_row("audio gaps > 60 ms / longest", gaps)
    facts.add_row("packet loss", "-" if summary.get("packet_loss") is None else f"{summary['packet_loss']:.2%}")
    if server:
        facts.add_row("server CPU", f"{server['cpu_cores']:.2f} cores ({server['window']} window)")
        facts.add_row("server frame lag p50 / p99", f"{server['frame_lag_p50_ms']} / {server['frame_lag_p99_ms']} ms "
                                                     f"over {server['frames']} frames")
        facts.add_row("frames over the max lag", str(server["frames_over_max_threshold"]))
        facts.add_row("server event-loop lag p99", f"{server['event_loop_lag_p99_ms']} ms")
        stages = ", ".join(f"{name} {s['p50_ms']}" for name, s in server.get("stages", {}).items() if s["count"])
        if stages:
            facts.add_row("pipeline stages p50 (ms)", stages)
    if "calls_per_core" in summary:
        facts.add_row("calls per core", f"{summary['calls_per_core']} (highest held {summary['highest_calls_held']}, "
                                        f"broke at {summary['broke_at']}, pinned {summary['pinned']})")
    if summary.get("calls_per_core_vs_echo") is not None:
        facts.add_row("vs bare aiortc echo", f"{summary['calls_per_core_vs_echo']}× "
                                             f"(echo: {result['baseline']['calls_per_core']} per core)")
    if summary.get("cpu_per_call_pct") is not None:
        line = f"{summary['cpu_per_call_pct']}% of a core (→ {summary['calls_per_core_by_cpu']} calls per core by CPU)"
        if summary.get("cpu_per_call_vs_echo") is not None:
            line += f"; {summary['cpu_per_call_vs_echo']}× the echo's {result['baseline']['cpu_per_call_pct']}%"
        facts.add_row("server CPU per call", line)
    if result.get("generator_saturated"):
        facts.add_row("warning", "the callers' own event loop lagged: their figures include their own overload")
    console.print(facts)


# ---- report --------------------------------------------------------------------------------------------

def write_report(folder: Path, result: dict[str, Any]) -> list[Path]:
    """latency_cdf.png, ramp.png (with --ramp), index.html and result.json in `folder`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(7, 4))
    series = {
        "set-up": [c["setup_ms"] for c in result.get("calls", []) if c["setup_ms"] is not None],
        "first agent audio": [c["first_audio_ms"] for c in result.get("calls", []) if c["first_audio_ms"] is not None],
        "response": [v for c in result.get("calls", []) for v in c["response_ms"]],
        "barge-in": [v for c in result.get("calls", []) for v in c["barge_in_ms"]],
    }
    for label, values in series.items():
        if values:
            values = sorted(values)
            ax.step(values, [(i + 1) / len(values) for i in range(len(values))], where="post",
                    label=f"{label} (n={len(values)})")
    ax.set_xlabel("milliseconds (at the caller)")
    ax.set_ylabel("fraction of samples ≤ x")
    ax.set_title("Latency CDFs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(folder / "latency_cdf.png")
    fig.savefig(written[-1], dpi=90)
    plt.close(fig)

    steps = result.get("steps", [])
    if len(steps) > 1 or result.get("baseline"):
        fig, (cpu_ax, lag_ax) = plt.subplots(1, 2, figsize=(10, 4))
        runs = [("talkwire", steps)]
        if result.get("baseline"):
            runs.append(("aiortc echo", result["baseline"]["steps"]))
        for color, (name, run) in zip(("C0", "C1"), runs, strict=False):
            n = [s["concurrent_calls"] for s in run]
            cpu_ax.plot(n, [s["server"]["cpu_cores"] for s in run], marker="o", color=color, label=name)
            lag_ax.plot(n, [s["server"]["frame_lag_p99_ms"] or 0 for s in run], marker="o", color=color,
                        label=f"{name}: frame lag p99")
            lag_ax.plot(n, [s["server"]["event_loop_lag_p99_ms"] or 0 for s in run], linestyle="--", marker=".",
                        color=color, label=f"{name}: event-loop lag p99")
        cpu_ax.set(xlabel="concurrent calls", ylabel="server CPU (cores)", title="CPU vs concurrent calls")
        lag_ax.axhline(result["config"]["thresholds"]["p99_lag_ms"], color="red", linewidth=0.8)
        lag_ax.set(xlabel="concurrent calls", ylabel="ms", title="Outbound frame lag vs concurrent calls")
        for ax in (cpu_ax, lag_ax):
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(folder / "ramp.png")
        fig.savefig(written[-1], dpi=90)
        plt.close(fig)

    (folder / "result.json").write_text(json.dumps(result, indent=1))
    written.append(folder / "result.json")
    written.append(folder / "index.html")
    written[-1].write_text(render_html(result, [p.name for p in written if p.suffix == ".png"]))
    return written


def render_html(result: dict[str, Any], images: list[str]) -> str:
    summary = result["summary"]
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(label)}</td>" + "".join(
            f"<td>{'-' if (summary.get(key) or {}).get(c) is None else summary[key][c]}</td>"
            for c in ("p50", "p95", "p99", "max")) + "</tr>"
        for key, label in LATENCIES)
    step_rows = "".join(
        f"<tr><td>{s['concurrent_calls']}</td><td>{s['summary']['calls_ok']}/{s['summary']['calls_failed']}</td>"
        f"<td>{s['server']['cpu_cores']}</td><td>{s['server']['frame_lag_p99_ms']}</td>"
        f"<td>{s['server']['frames_over_max_threshold']}</td><td>{s['server']['event_loop_lag_p99_ms']}</td>"
        f"<td>{'held' if s['held'] else 'broke'}</td></tr>"
        for s in result.get("steps", []))
    extra = ""
    if "calls_per_core" in summary:
        extra = f"<p><b>Calls per core:</b> {summary['calls_per_core']} (pinned: {summary['pinned']})"
        if summary.get("calls_per_core_vs_echo") is not None:
            extra += (f"; bare aiortc echo: {result['baseline']['calls_per_core']} → "
                      f"<b>{summary['calls_per_core_vs_echo']}×</b> the echo baseline")
        extra += "</p>"
    if summary.get("cpu_per_call_pct") is not None:
        extra += (f"<p><b>Server CPU per call:</b> {summary['cpu_per_call_pct']}% of a core "
                  f"(→ {summary['calls_per_core_by_cpu']} calls per core by CPU)")
        if summary.get("cpu_per_call_vs_echo") is not None:
            extra += (f"; bare aiortc echo: {result['baseline']['cpu_per_call_pct']}% → "
                      f"<b>{summary['cpu_per_call_vs_echo']}×</b> the echo's cost per call")
        extra += "</p>"
    config = esc(json.dumps(result.get("config", {})))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>talkwire loadtest</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:.2em .8em;text-align:right}}
td:first-child{{text-align:left}}table{{border-collapse:collapse}}tr:nth-child(even){{background:#f4f4f4}}</style>
</head><body>
<h1>talkwire loadtest</h1>
<p><code>{config}</code></p>
<p>Calls ok / failed: {summary['calls_ok']} / {summary['calls_failed']}; transcript WER: {summary.get('wer')};
packet loss: {summary.get('packet_loss')}</p>
{extra}
<h2>Latency at the caller (ms)</h2>
<table><tr><th>measure</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>{rows}</table>
<h2>Steps</h2>
<table><tr><th>calls</th><th>ok/failed</th><th>server CPU (cores)</th><th>frame lag p99 (ms)</th>
<th>frames over max</th><th>loop lag p99 (ms)</th><th></th></tr>{step_rows}</table>
{''.join(f'<h2>{esc(name)}</h2><img src="{esc(name)}" alt="{esc(name)}">' for name in images)}
<p>Full data: <a href="result.json">result.json</a></p>
</body></html>
"""
