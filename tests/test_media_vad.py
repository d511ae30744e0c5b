"""WebRTC VAD wrapper: speech is speech, silence and hiss are not, frames are checked."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from agent_runtime.providers.base import VoiceActivityDetector
from media import dsp
from media.resample import resample
from media.vad import WebRtcVad
from media.wav import read_wav

SENTENCE = "Hello, I would like to book a table for two people tomorrow evening at seven."


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, int]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path = tmp_path_factory.mktemp("vad") / "sentence.wav"
    subprocess.run(["espeak-ng", "-w", str(path), SENTENCE], check=True, timeout=60)
    return read_wav(path)


def frames(samples: np.ndarray, rate: int) -> np.ndarray:
    n = rate // 50
    return samples[: len(samples) // n * n].reshape(-1, n)


def speech_fraction(vad: WebRtcVad, samples: np.ndarray) -> float:
    return float(np.mean([vad.is_speech(f) for f in frames(samples, vad.sample_rate)]))


def test_is_a_voice_activity_detector() -> None:
    assert isinstance(WebRtcVad(), VoiceActivityDetector)


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_speech_is_speech_and_the_silence_around_it_is_not(speech: tuple[np.ndarray, int], rate: int) -> None:
    samples, source_rate = speech
    x = resample(samples, source_rate, rate)
    pad = np.zeros(rate // 2, dtype=np.int16)
    vad = WebRtcVad(2, rate)
    decisions = [vad.is_speech(f) for f in frames(np.concatenate([pad, x, pad]), rate)]
    lead = len(pad) // (rate // 50)
    assert not any(decisions[:lead]) and not any(decisions[-lead:])
    assert np.mean(decisions[lead:-lead]) > 0.7  # pauses between words are allowed to be non-speech


def test_silence_and_hiss_are_not_speech(speech: tuple[np.ndarray, int]) -> None:
    samples, source_rate = speech
    x = resample(samples, source_rate, 16000)
    rng = np.random.default_rng(1)
    hiss = dsp.float_to_int16(rng.standard_normal(32000) * 10 ** (-55 / 20))  # a fake device's noise floor
    assert speech_fraction(WebRtcVad(2, 16000), np.zeros(16000, dtype=np.int16)) == 0.0
    # The realistic order: the caller speaks, then the line hisses while they pause.
    gated = WebRtcVad(2, 16000)
    assert speech_fraction(gated, x) > 0.7
    assert speech_fraction(gated, hiss) == 0.0
    # It is the energy gate that rejects it: webrtcvad, once it has heard speech, calls this hiss speech.
    ungated = WebRtcVad(2, 16000, energy_gate_dbfs=None)
    assert speech_fraction(ungated, x) > 0.7
    assert speech_fraction(ungated, hiss) > 0.5


def test_frames_are_checked() -> None:
    vad = WebRtcVad(1, 8000)
    for ms in (10, 20, 30):
        assert vad.is_speech(np.zeros(8 * ms, dtype=np.int16)) is False
    with pytest.raises(ValueError):
        vad.is_speech(np.zeros(100, dtype=np.int16))
    with pytest.raises(TypeError):
        vad.is_speech(np.zeros(160, dtype=np.float32))
    with pytest.raises(ValueError):
        WebRtcVad(2, 22050)
    with pytest.raises(ValueError):
        WebRtcVad(4, 16000)
