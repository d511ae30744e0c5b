"""The load test's arithmetic: percentiles, word error rate, histogram deltas between two scrapes."""
from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest

from loadtest.audio import noise, trim, words
from loadtest.stats import HistogramDelta, parse_metrics, percentiles, wer, word_errors
from media.frame_lag import LAG_BUCKETS


def test_percentiles_ignore_missing_values() -> None:
    assert percentiles([None, None]) == {"p50": None, "p95": None, "p99": None, "max": None}
    result = percentiles([float(v) for v in range(1, 101)] + [None])
    assert result["p50"] == pytest.approx(50.5) and result["max"] == 100.0
    assert result["p50"] <= result["p95"] <= result["p99"] <= result["max"]


def test_word_error_rate() -> None:
    ref = words("What time does the store open tomorrow?")
    assert wer(ref, ref) == 0.0
    assert word_errors(ref, words("what time does store open tomorrow morning")) == 2  # one deletion, one insertion
    assert wer(ref, []) == 1.0
    assert wer([], ["hello"]) is None


def test_histogram_delta_reads_exact_threshold_fractions() -> None:
    registry = CollectorRegistry()
    lag = Histogram("lag_seconds", "test", ["leg"], buckets=LAG_BUCKETS, registry=registry)
    lag.labels("webrtc").observe(0.5)  # before the window: must not count
    before = parse_metrics(generate_latest(registry).decode())
    for v in [0.001] * 97 + [0.03, 0.03, 0.05]:
        lag.labels("webrtc").observe(v)
    after = parse_metrics(generate_latest(registry).decode())
    delta = HistogramDelta.between(before, after, "lag_seconds")
    assert delta.total == 100
    assert delta.fraction_above(0.02) == pytest.approx(0.03)  # p99 is above 20 ms
    assert delta.count_above(0.04) == 1  # one frame over 40 ms
    assert 0.02 < delta.quantile(0.99) <= 0.04
    assert delta.quantile(0.5) <= 0.001
    assert HistogramDelta.between(after, after, "lag_seconds").quantile(0.99) is None


def test_synthetic_audio_is_deterministic() -> None:
    assert (noise(0.5, seed=3) == noise(0.5, seed=3)).all()
    assert not (noise(0.5, seed=3) == noise(0.5, seed=4)).all()
    import numpy as np

    clip = np.concatenate([np.zeros(100, np.int16), np.full(50, 5000, np.int16), np.zeros(100, np.int16)])
    assert len(trim(clip)) == 50
