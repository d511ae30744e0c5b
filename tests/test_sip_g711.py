"""G.711 by table lookup must be bit-exact with the reference (CPython 3.11's audioop) for every input."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from media import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop", reason="audioop (the reference) is gone in Python 3.13")

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


@pytest.mark.parametrize("encode,reference", [(g711.ulaw_encode, audioop.lin2ulaw), (g711.alaw_encode, audioop.lin2alaw)],
                         ids=["mu-law", "A-law"])
def test_encode_matches_audioop_for_all_65536_inputs(encode, reference):
    assert encode(ALL_SAMPLES).tobytes() == reference(ALL_SAMPLES.tobytes(), 2)


@pytest.mark.parametrize("decode,reference", [(g711.ulaw_decode, audioop.ulaw2lin), (g711.alaw_decode, audioop.alaw2lin)],
                         ids=["mu-law", "A-law"])
def test_decode_matches_audioop_for_all_256_codes(decode, reference):
    assert decode(ALL_CODES).tobytes() == reference(ALL_CODES, 2)


def test_batched_encode_of_many_legs_equals_per_leg_encode():
    rng = np.random.default_rng(1)
    frames = rng.integers(-32768, 32768, size=(37, 160), dtype=np.int16)
    batched = g711.ulaw_encode(frames)
    assert batched.shape == (37, 160)
    for row in range(37):
        assert batched[row].tobytes() == audioop.lin2ulaw(frames[row].tobytes(), 2)


def test_round_trip_is_close_and_silence_is_the_idle_code():
    x = (np.sin(np.arange(1600) / 8) * 12000).astype(np.int16)
    for pt in (g711.PCMU, g711.PCMA):
        y = g711.decode(pt, g711.encode(pt, x))
        assert np.max(np.abs(y.astype(int) - x)) < 12000 * 0.07
    assert g711.ULAW_SILENCE == 0xFF and g711.ALAW_SILENCE == 0xD5
