"""Vectorised sample kernels: downmix, energy, gain, mixing, interleaving, float/int16 conversion.

Every function takes numpy arrays and never loops over samples in Python. The energy and gain kernels
also take a 2-D array of shape (calls, samples) so that one array operation serves every leg's frame
of a clock tick at once (see scripts/bench_dsp.py for what that saves).

Level convention: dBFS is relative to the int16 full scale of 32768, so a full-scale square wave is
0 dBFS and a full-scale sine is about -3 dBFS. Digital silence reports DBFS_FLOOR instead of -inf so
the figure stays a finite float (logs, JSON, comparisons).
"""
from __future__ import annotations

import numpy as np

INT16_MIN = -32768
INT16_MAX = 32767
FULL_SCALE = 32768.0
DBFS_FLOOR = -120.0
DEFAULT_SILENCE_DBFS = -50.0
_F32_MIN, _F32_MAX = np.float32(INT16_MIN), np.float32(INT16_MAX)
_I32_MIN, _I32_MAX = np.int32(INT16_MIN), np.int32(INT16_MAX)


def _saturate_float(x: np.ndarray) -> np.ndarray:
    """Round a float32 array in place and convert it to int16, saturating at the limits.

    np.minimum/np.maximum with typed scalars, not np.clip: on 20 ms frames np.clip's Python-level
    argument handling costs several times the arithmetic itself.
    """
    np.rint(x, out=x)
    np.minimum(x, _F32_MAX, out=x)
    np.maximum(x, _F32_MIN, out=x)
    return x.astype(np.int16)


def int16_to_float(samples: np.ndarray) -> np.ndarray:
    """int16 → float32 in [-1, 1)."""
    return samples.astype(np.float32) * np.float32(1.0 / FULL_SCALE)


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """float in [-1, 1] → int16, clipping out-of-range values instead of wrapping them.

    Uses the same 32768 scale as `int16_to_float`, so int16 → float → int16 is exact.
    """
    return _saturate_float(np.asarray(samples, dtype=np.float32) * np.float32(FULL_SCALE))


def to_mono_int16(array: np.ndarray, channels: int) -> np.ndarray:
    """Downmix decoder output to mono int16.

    Accepts what PyAV's `AudioFrame.to_ndarray()` gives: packed (interleaved) audio as shape
    (1, samples × channels) or a flat array, and planar audio as shape (channels, samples). Float
    formats (flt/fltp) are converted with clipping. Channels are averaged (no clipping possible).
    """
    if channels < 1:
        raise ValueError("channels must be ≥ 1")
    a = np.asarray(array)
    if a.dtype.kind == "f":
        a = float_to_int16(a)
    elif a.dtype != np.int16:
        raise TypeError(f"expected int16 or float samples, got {a.dtype}")
    if channels == 1:
        return a.reshape(-1)
    if a.ndim == 2 and a.shape[0] == channels:
        planes = list(a)  # planar: one row per channel
    else:
        flat = a.reshape(-1)
        if len(flat) % channels:
            raise ValueError(f"{len(flat)} interleaved samples do not split into {channels} channels")
        planes = [flat[c::channels] for c in range(channels)]
    total = planes[0].astype(np.int32)
    for plane in planes[1:]:
        total += plane
    return (total // channels).astype(np.int16)


def interleave(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two mono int16 channels of equal length → one interleaved stereo array (L, R, L, R, …)."""
    if left.shape != right.shape:
        raise ValueError(f"channel lengths differ: {left.shape} vs {right.shape}")
    out = np.empty(left.shape[:-1] + (left.shape[-1] * 2,), dtype=np.int16)
    out[..., 0::2] = left
    out[..., 1::2] = right
    return out


def rms(samples: np.ndarray) -> np.ndarray | float:
    """Root mean square in int16 units; per row for a (calls, samples) batch."""
    x = samples.astype(np.float32)
    n = x.shape[-1]
    if x.ndim == 1:  # np.dot is the cheapest call for one frame
        return float(np.sqrt(x.dot(x) / n)) if n else 0.0
    if n == 0:
        return np.zeros(x.shape[:-1], dtype=np.float32)
    return np.sqrt(np.einsum("...i,...i->...", x, x) / np.float32(n))


def dbfs(samples: np.ndarray) -> np.ndarray | float:
    """Level in dBFS (see the module docstring); per row for a batch; DBFS_FLOOR for silence."""
    level = np.asarray(rms(samples), dtype=np.float64)
    with np.errstate(divide="ignore"):
        value = np.maximum(20.0 * np.log10(level / FULL_SCALE), DBFS_FLOOR)
    return float(value) if value.ndim == 0 else value


def is_silent(samples: np.ndarray, threshold_dbfs: float = DEFAULT_SILENCE_DBFS) -> np.ndarray | bool:
    """Whether the level is below `threshold_dbfs`; per row for a batch."""
    below = np.asarray(dbfs(samples)) < threshold_dbfs
    return bool(below) if below.ndim == 0 else below


def db_to_factor(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def apply_gain(samples: np.ndarray, db: float | np.ndarray) -> np.ndarray:
    """Scale int16 samples by `db` decibels, saturating at the int16 limits instead of wrapping.

    `db` may be one value, or one value per row of a (calls, samples) batch (shape (calls, 1) or (calls,)).
    """
    if isinstance(db, (int, float, np.floating)):  # not np.ndim: it costs more than the multiply
        factor = np.float32(db_to_factor(float(db)))
    else:
        factor = np.power(np.float32(10.0), np.asarray(db, dtype=np.float32) / np.float32(20.0))
        if factor.ndim == 1 and samples.ndim == 2:
            factor = factor[:, None]
    return _saturate_float(samples * factor)  # int16 × float32 → float32


def mix(*signals: np.ndarray) -> np.ndarray:
    """Sum int16 signals of the same shape, saturating at the int16 limits."""
    if not signals:
        raise ValueError("mix needs at least one signal")
    shape = signals[0].shape
    for s in signals[1:]:
        if s.shape != shape:
            raise ValueError(f"cannot mix shapes {shape} and {s.shape}")
    total = np.add(signals[0], signals[1], dtype=np.int32) if len(signals) > 1 else signals[0].astype(np.int32)
    for s in signals[2:]:
        total += s
    np.minimum(total, _I32_MAX, out=total)
    np.maximum(total, _I32_MIN, out=total)
    return total.astype(np.int16)
