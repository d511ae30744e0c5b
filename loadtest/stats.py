"""Numbers for the load test: percentiles, word error rate, and arithmetic on scraped Prometheus metrics."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def percentiles(values: Iterable[float | None]) -> dict[str, float | None]:
    """{p50, p95, p99, max} of the values (None ignored), rounded to 0.1; all None when there are none."""
    data = np.array([v for v in values if v is not None], dtype=np.float64)
    if not len(data):
        return {"p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(data, [50, 95, 99])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1), "p99": round(float(p99), 1),
            "max": round(float(data.max()), 1)}


def word_errors(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Levenshtein distance over words (substitutions + deletions + insertions)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp))
        previous = current
    return previous[-1]


def wer(reference: Sequence[str], hypothesis: Sequence[str]) -> float | None:
    """Word error rate; None when nothing was said (no reference words)."""
    if not reference:
        return None
    return word_errors(reference, hypothesis) / len(reference)


# ---- Prometheus -------------------------------------------------------------------------------------

def parse_metrics(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@dataclass
class HistogramDelta:
    """A histogram's growth between two scrapes (all label sets matching `labels` summed)."""

    bounds: list[float]  # upper bounds, ascending, +Inf last
    counts: list[float]  # cumulative counts per bound
    total: float
    sum: float

    @classmethod
    def between(cls, before: Samples, after: Samples, name: str, **labels: str) -> HistogramDelta:
        def matches(key_labels: tuple[tuple[str, str], ...]) -> bool:
            have = dict(key_labels)
            return all(have.get(k) == v for k, v in labels.items())

        buckets: dict[float, float] = {}
        total = sums = 0.0
        for (metric, key_labels), v in after.items():
            if not matches(key_labels):
                continue
            grown = v - before.get((metric, key_labels), 0.0)
            if metric == f"{name}_bucket":
                bound = float(dict(key_labels)["le"])
                buckets[bound] = buckets.get(bound, 0.0) + grown
            elif metric == f"{name}_count":
                total += grown
            elif metric == f"{name}_sum":
                sums += grown
        bounds = sorted(buckets)
        return cls(bounds, [buckets[b] for b in bounds], total, sums)

    def _at_or_above(self, bound: float) -> int:
        return next(i for i, b in enumerate(self.bounds) if b >= bound - 1e-12)

    def fraction_above(self, bound: float) -> float:
        """Share of observations above `bound`: exact when it is a bucket bound, else above the next bound up."""
        return self.count_above(bound) / self.total if self.total else 0.0

    def count_above(self, bound: float) -> float:
        return self.total - self.counts[self._at_or_above(bound)] if self.total else 0.0

    def quantile(self, q: float) -> float | None:
        """Like PromQL's histogram_quantile: linear within the bucket; the top finite bound if beyond it."""
        if not self.total:
            return None
        rank = q * self.total
        lower_bound, lower_count = 0.0, 0.0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            if count >= rank:
                if math.isinf(bound):
                    return lower_bound
                if count == lower_count:
                    return bound
                return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
            lower_bound, lower_count = bound, count
        return lower_bound

    def mean(self) -> float | None:
        return self.sum / self.total if self.total else None
