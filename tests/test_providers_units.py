"""Provider helpers that need no model: history shaping for the local LLM, espeak-ng's WAV stream."""
from __future__ import annotations

import struct

import pytest

from agent_runtime.providers.base import ProviderError
from agent_runtime.providers.espeak import _data_offset
from agent_runtime.providers.local_llm import fit_context, plain_messages


def count_words(text: str) -> int:
    return len(text.split())


def test_plain_messages_keeps_text_turns_for_the_chat_template() -> None:
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                "function": {"name": "look", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "a red apple"},
        {"role": "assistant", "content": "It is an apple."},
    ]
    assert plain_messages(history) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is this?"},
        {"role": "user", "content": "(tool result) a red apple"},
        {"role": "assistant", "content": "It is an apple."},
    ]


def test_fit_context_drops_the_oldest_turns_but_keeps_system_and_last() -> None:
    system = {"role": "system", "content": "word " * 10}
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn{i} " + "word " * 19}
             for i in range(10)]  # 20 words + 8 overhead each
    history = [system, *turns]
    assert fit_context(history, count_words, 10_000) == history
    fitted = fit_context(history, count_words, 18 + 3 * 28)
    assert fitted == [system, *turns[-3:]]
    # even when one turn alone is over budget, the caller's last words are kept
    assert fit_context(history, count_words, 5) == [system, turns[-1]]
    assert fit_context(turns, count_words, 28) == [turns[-1]]


def wav_header(channels: int = 1, rate: int = 22050) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", 0xFFFFFFFF))


def test_espeak_wav_stream_header() -> None:
    header = wav_header()
    assert _data_offset(header) == 44
    assert _data_offset(header[:30]) is None  # wait for more bytes
    with pytest.raises(ProviderError):
        _data_offset(wav_header(rate=16000))
    with pytest.raises(ProviderError):
        _data_offset(b"this is not a wav stream")
