"""Cost of the media core's DSP kernels per 20 ms frame, as ratios against baselines from the same run.

Each kernel is timed on one call's frame ("single") and batched across N calls ("batch N": the
frames of N legs stacked into one array and processed by one array operation, the stacking included
in the time), reported in µs per call-frame. Baselines, timed the same way:

- stdlib `audioop` (ratecv, tomono, mul, add, rms, lin2ulaw, ulaw2lin, lin2alaw, alaw2lin): the C
  code most Python VoIP stacks use; batched, it is a Python loop over the N frames. It takes bytes,
  and is handed them ready-made (its most favourable case).
- `soxr.resample` called once per frame (no state between frames) for the resampling kernels.

`speedup` = baseline time / ours: above 1 means ours is faster. These machines are shared and noisy,
which is why only ratios within one run are meaningful; each figure is the best of `--repeat` runs.

    .venv/bin/python scripts/bench_dsp.py                 # full run, prints a table
    .venv/bin/python scripts/bench_dsp.py --quick         # smoke run (seconds)
    .venv/bin/python scripts/bench_dsp.py --json out.json --calls 10,100,400
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soxr
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media import dsp  # noqa: E402
from media.frames import AudioFrame, samples_per_frame  # noqa: E402
from media.resample import FrameResampler, StreamResampler  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # Python ≥ 3.13
        audioop = None

console = Console()
if not console.is_terminal:
    console = Console(width=150)  # piped or captured: do not squeeze the table into 80 columns
RESAMPLE_PAIRS = [(48000, 16000), (22050, 48000), (22050, 8000), (16000, 8000)]


@dataclass
class Result:
    kernel: str
    mode: str  # "single" | "batch N"
    calls: int
    ours_us: float  # per call-frame
    baselines_us: dict[str, float] = field(default_factory=dict)

    @property
    def speedups(self) -> dict[str, float]:
        return {name: base / self.ours_us for name, base in self.baselines_us.items()}


def calibrate(fn: Callable[[], object], target_s: float) -> int:
    """How many calls of `fn` make one timed run of about `target_s`."""
    fn()  # warm up (first-call allocation, table loading)
    number = 1
    while True:
        elapsed = run_once(fn, number)
        if elapsed >= target_s or number >= 1 << 20:
            return number
        number *= 2 if elapsed == 0 else max(2, min(10, int(target_s / elapsed) + 1))


def run_once(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - start


def best_per_call(fns: dict[str, Callable[[], object]], calls: int, target_s: float, repeat: int) -> dict[str, float]:
    """µs per call-frame for each function: best of `repeat` rounds.

    The functions take turns within each round, so a burst of load from other processes hits
    ours and the baselines alike instead of skewing one figure.
    """
    numbers = {name: calibrate(fn, target_s) for name, fn in fns.items()}
    best = {name: float("inf") for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            best[name] = min(best[name], run_once(fn, numbers[name]) / numbers[name])
    return {name: t / calls * 1e6 for name, t in best.items()}


def speech_like(rate: int, calls: int, seed: int) -> np.ndarray:
    """(calls, one 20 ms frame) of tone + noise at about -20 dBFS, different per call."""
    rng = np.random.default_rng(seed)
    n = samples_per_frame(rate)
    t = np.arange(n) / rate
    freqs = rng.uniform(150, 3000, size=(calls, 1))
    tone = 0.08 * np.sin(2 * np.pi * freqs * t)
    noise = 0.02 * rng.standard_normal((calls, n))
    return dsp.float_to_int16(tone + noise)


class Bench:
    def __init__(self, calls: list[int], target_s: float, repeat: int) -> None:
        self.calls = calls
        self.target_s = target_s
        self.repeat = repeat
        self.results: list[Result] = []

    def add(self, kernel: str, calls: int, ours: Callable[[], object],
            baselines: dict[str, Callable[[], object]]) -> None:
        mode = "single" if calls == 1 else f"batch {calls}"
        times = best_per_call({"ours": ours, **baselines}, calls, self.target_s, self.repeat)
        result = Result(kernel, mode, calls, times.pop("ours"), times)
        self.results.append(result)
        console.log(f"{kernel:<34} {mode:<10} {result.ours_us:8.2f} µs")

    # ---- kernels ------------------------------------------------------------------------------

    def resampling(self) -> None:
        for in_rate, out_rate in RESAMPLE_PAIRS:
            name = f"resample {in_rate / 1000:g}k→{out_rate / 1000:g}k"
            for calls in [1, *self.calls]:
                frames = speech_like(in_rate, calls, seed=in_rate + out_rate)
                rows = list(frames)
                byte_rows = [r.tobytes() for r in rows]
                baselines: dict[str, Callable[[], object]] = {}
                if audioop is not None:
                    states: list = [None] * calls

                    def ratecv(byte_rows=byte_rows, states=states, i=in_rate, o=out_rate) -> None:
                        for k, b in enumerate(byte_rows):
                            _, states[k] = audioop.ratecv(b, 2, 1, i, o, states[k])
                    baselines["audioop"] = ratecv

                def oneshot(rows=rows, i=in_rate, o=out_rate) -> None:
                    for r in rows:
                        soxr.resample(r, i, o)
                baselines["soxr.resample"] = oneshot

                if calls == 1:
                    stream = StreamResampler(in_rate, out_rate)
                    row = rows[0]
                    self.add(name, 1, lambda s=stream, r=row: s.push(r), baselines)
                    framer = FrameResampler(in_rate, out_rate)
                    frame = AudioFrame(row, in_rate)
                    self.add(name + " +reframe", 1, lambda f=framer, a=frame: f.push(a), baselines)
                    quick = StreamResampler(in_rate, out_rate, low_latency=True)
                    self.add(name + " low-latency", 1, lambda s=quick, r=row: s.push(r), baselines)
                else:
                    # Legs in lockstep on the shared clock: one soxr stream with one channel per leg.
                    multi = soxr.ResampleStream(in_rate, out_rate, calls, dtype="int16", quality="HQ")

                    def batched(m=multi, rows=rows) -> None:
                        out = m.resample_chunk(np.stack(rows, axis=1))
                        return list(out.T)
                    self.add(name, calls, batched, baselines)

    def downmix(self) -> None:
        for calls in [1, *self.calls]:
            mono = speech_like(48000, calls * 2, seed=7)
            packed = [dsp.interleave(mono[2 * k], mono[2 * k + 1]) for k in range(calls)]
            byte_rows = [p.tobytes() for p in packed]
            baselines = {}
            if audioop is not None:
                baselines["audioop"] = lambda br=byte_rows: [audioop.tomono(b, 2, 0.5, 0.5) for b in br]
            if calls == 1:
                ours = lambda p=packed[0]: dsp.to_mono_int16(p.reshape(1, -1), 2)  # noqa: E731 (av's shape)
            else:
                ours = lambda p=packed, n=calls: dsp.to_mono_int16(np.concatenate(p), 2).reshape(n, -1)  # noqa: E731
            self.add("downmix stereo 48k → mono", calls, ours, baselines)

    def simple(self) -> None:
        """Per-frame kernels on 16 kHz frames: gain, mix, energy."""
        gain_db = -6.0
        factor = dsp.db_to_factor(gain_db)
        for calls in [1, *self.calls]:
            a = list(speech_like(16000, calls, seed=11))
            b = list(speech_like(16000, calls, seed=12))
            ab, bb = [x.tobytes() for x in a], [x.tobytes() for x in b]
            single = calls == 1
            au = audioop is not None

            ours = (lambda x=a[0]: dsp.apply_gain(x, gain_db)) if single else \
                (lambda x=a: dsp.apply_gain(np.stack(x), gain_db))
            base = {"audioop": lambda xs=ab: [audioop.mul(x, 2, factor) for x in xs]} if au else {}
            self.add("gain -6 dB (saturating) 16k", calls, ours, base)

            ours = (lambda x=a[0], y=b[0]: dsp.mix(x, y)) if single else \
                (lambda x=a, y=b: dsp.mix(np.stack(x), np.stack(y)))
            base = {"audioop": lambda xs=ab, ys=bb: [audioop.add(x, y, 2) for x, y in zip(xs, ys, strict=True)]} \
                if au else {}
            self.add("mix two (saturating) 16k", calls, ours, base)

            ours = (lambda x=a[0]: dsp.rms(x)) if single else (lambda x=a: dsp.rms(np.stack(x)))
            base = {"audioop": lambda xs=ab: [audioop.rms(x, 2) for x in xs]} if au else {}
            self.add("energy (rms) 16k", calls, ours, base)

    def g711(self) -> None:
        try:
            g711 = importlib.import_module("media.g711")
        except ImportError:
            console.print("[yellow]media/g711.py is not there yet: G.711 kernels skipped[/]")
            return
        codecs = [("µ-law", "ulaw", "lin2ulaw", "ulaw2lin"), ("A-law", "alaw", "lin2alaw", "alaw2lin")]
        for label, short, enc_name, dec_name in codecs:
            encode = getattr(g711, f"{short}_encode", None)
            decode = getattr(g711, f"{short}_decode", None)
            if encode is None or decode is None:
                console.print(f"[yellow]media.g711 has no {short}_encode/{short}_decode: {label} skipped[/]")
                continue
            for calls in [1, *self.calls]:
                pcm = list(speech_like(8000, calls, seed=13))
                pcm_bytes = [p.tobytes() for p in pcm]
                codes = [encode(p) for p in pcm]
                code_bytes = [c.tobytes() for c in codes]
                single = calls == 1
                au_enc = getattr(audioop, enc_name) if audioop else None
                au_dec = getattr(audioop, dec_name) if audioop else None

                ours = (lambda p=pcm[0], enc=encode: enc(p)) if single else \
                    (lambda p=pcm, enc=encode: enc(np.stack(p)))
                base = {"audioop": lambda xs=pcm_bytes, f=au_enc: [f(x, 2) for x in xs]} if au_enc else {}
                self.add(f"G.711 {label} encode 8k", calls, ours, base)

                ours = (lambda c=code_bytes[0], dec=decode: dec(c)) if single else \
                    (lambda c=codes, dec=decode: dec(np.stack(c)))
                base = {"audioop": lambda xs=code_bytes, f=au_dec: [f(x, 2) for x in xs]} if au_dec else {}
                self.add(f"G.711 {label} decode 8k", calls, ours, base)

    def run(self) -> list[Result]:
        self.resampling()
        self.downmix()
        self.simple()
        self.g711()
        return self.results


def print_table(results: list[Result]) -> None:
    order = {k: i for i, k in enumerate(dict.fromkeys(r.kernel for r in results))}
    results = sorted(results, key=lambda r: (order[r.kernel], r.calls))
    names = sorted({n for r in results for n in r.baselines_us}, key=lambda n: (n != "audioop", n))
    table = Table(title="DSP kernels: µs per call per 20 ms frame (speedup = baseline / ours, >1 is faster)")
    table.add_column("kernel")
    table.add_column("mode")
    table.add_column("ours µs", justify="right")
    for n in names:
        table.add_column(f"{n} µs", justify="right")
        table.add_column(f"× {n}", justify="right")
    for r in results:
        cells = [r.kernel, r.mode, f"{r.ours_us:.2f}"]
        for n in names:
            if n in r.baselines_us:
                cells += [f"{r.baselines_us[n]:.2f}", f"{r.speedups[n]:.1f}"]
            else:
                cells += ["–", "–"]
        table.add_row(*cells)
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run: short timings, batch of 4")
    parser.add_argument("--calls", default="10,100,400", help="comma-separated batch sizes (default 10,100,400)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure; the best is kept")
    parser.add_argument("--target-ms", type=float, default=50.0, help="length of one timed run")
    parser.add_argument("--json", type=Path, help="write the results as JSON to this path")
    args = parser.parse_args(argv)

    calls = [int(c) for c in args.calls.split(",") if c.strip()]
    if args.quick:
        calls, repeat, target_s = [4], 2, 0.002
    else:
        repeat, target_s = args.repeat, args.target_ms / 1000
    if any(c < 2 for c in calls):
        parser.error("batch sizes must be ≥ 2 (size 1 is the single-frame row)")
    if audioop is None:
        console.print("[yellow]audioop is not available on this Python: its baselines are skipped[/]")

    results = Bench(calls, target_s, repeat).run()
    print_table(results)
    if args.json:
        payload = {
            "meta": {
                "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "python": platform.python_version(),
                "machine": platform.machine(),
                "processor": platform.processor(),
                "numpy": np.__version__,
                "soxr": soxr.__version__,
                "quick": args.quick,
                "repeat": repeat,
                "target_s": target_s,
                "unit": "microseconds per call per 20 ms frame (best of repeat)",
            },
            "results": [asdict(r) | {"speedups": r.speedups} for r in results],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
        console.print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
