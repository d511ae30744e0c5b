"""The conversation's pure parts: sentence splitting, heard-text cutting, turn detection, history, config, FAKE providers."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.agent_config import AgentConfig
from agent_runtime.history import History
from agent_runtime.providers.base import LanguageModel, SpeechToText, TextDelta, TextToSpeech, ToolCallRequest
from agent_runtime.providers.fake import FakeLLM, FakeSTT, FakeTTS
from agent_runtime.sentences import SentenceSplitter, heard_part
from agent_runtime.turn_taking import TurnDetector
from media.dsp import dbfs


def split_stream(text: str, step: int, splitter: SentenceSplitter | None = None) -> list[str]:
    """`text` pushed `step` characters at a time into `splitter` (default: a plain one), then flushed."""
    splitter = splitter or SentenceSplitter()
    pieces = []
    for i in range(0, len(text), step):
        pieces += splitter.push(text[i:i + step])
    tail = splitter.flush()
    return pieces + ([tail] if tail else [])


def test_splitter_cuts_sentences_as_they_stream() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Hello there") == []
    assert splitter.push(".") == []  # no cut until whitespace follows the mark ("3.5" stays whole)
    assert splitter.push(" How are you? I") == ["Hello there.", "How are you?"]
    assert splitter.flush() == "I"


def test_splitter_keeps_decimals_and_cuts_long_clauses_at_commas() -> None:
    assert split_stream("It costs 3.50 dollars. Yes.", 1) == ["It costs 3.50 dollars.", "Yes."]
    long = "When you arrive at the north entrance of the mall, turn left and walk on"
    assert split_stream(long, 5) == ["When you arrive at the north entrance of the mall,", "turn left and walk on"]
    assert split_stream("Yes, sure, fine.", 3) == ["Yes, sure, fine."]  # short clauses stay together


def test_splitter_may_cut_the_first_clause_shorter() -> None:
    text = "I'm sorry for any confusion, but I can help you, if you like, with that. Yes."
    pieces = []
    splitter = SentenceSplitter(first_comma_words=3)
    for i in range(0, len(text), 4):
        pieces += splitter.push(text[i:i + 4])
    pieces.append(splitter.flush())
    # Only the first piece is cut at a comma after 3 words; later clauses need the usual 6.
    assert pieces == ["I'm sorry for any confusion,", "but I can help you, if you like,", "with that.", "Yes."]
    assert split_stream(text, 4)[0] == "I'm sorry for any confusion, but I can help you,"
    splitter = SentenceSplitter(first_comma_words=3)
    assert splitter.push("Yes, sure. ") == ["Yes, sure."]  # two words: no cut at the comma


def first_pieces(text: str, step: int = 3) -> list[str]:
    return split_stream(text, step, SentenceSplitter(first_comma_words=3, first_join_words=4))


def test_the_first_piece_may_end_before_a_joining_word() -> None:
    long = "The return policy is that you can return any item that is not available to you within 24 hours. Yes."
    assert first_pieces(long) == [
        "The return policy is", "that you can return any item that is not available to you within 24 hours.", "Yes."]
    assert first_pieces("The store is open from 9:00 AM to 12:00 PM.") == ["The store is open", "from 9:00 AM to 12:00 PM."]
    # Not before "of" or "to", not inside a word ("sand", "android"), not with fewer than 4 words before it.
    assert first_pieces("You can check the standards of your order by visiting the website.") == [
        "You can check the standards of your order", "by visiting the website."]
    assert first_pieces("Sand android order: I like to go. And then") == ["Sand android order:", "I like to go.", "And then"]
    assert first_pieces("Yes and no and maybe and so on.") == ["Yes and no and maybe", "and so on."]
    # Only the first piece: later ones end at sentence marks and late commas as before.
    assert first_pieces("Sure. I can help you with that and more if you like.") == [
        "Sure.", "I can help you with that and more if you like."]
    # Hindi: the danda ends a sentence, and "कि"/"और" are joining words.
    assert first_pieces("मुझे ऐसा लगता है कि आप सही हैं। और मैं मदद करूँगा।") == [
        "मुझे ऐसा लगता है", "कि आप सही हैं।", "और मैं मदद करूँगा।"]
    splitter = SentenceSplitter()  # without first_join_words, no such cut
    assert splitter.push("The return policy is that you can return any item ") == []


@given(st.lists(st.sampled_from([*"abc .,!?;:\n0123।", " and ", " that "]), max_size=40).map("".join),
       st.integers(1, 9))
def test_splitter_never_loses_or_reorders_words(text: str, step: int) -> None:
    pieces = split_stream(text, step)
    joined = first_pieces(text, step)
    assert "".join(c for c in "".join(joined) if c.isalnum()) == "".join(c for c in text if c.isalnum())
    assert "".join(c for c in "".join(pieces) if c.isalnum()) == "".join(c for c in text if c.isalnum())
    assert all(p == p.strip() and any(c.isalnum() for c in p) for p in pieces)


def test_heard_part_is_proportional() -> None:
    text = "one two three four"
    assert heard_part(text, 1.0) == text
    assert heard_part(text, 0.0) == ""
    assert heard_part(text, 0.5) == "one two"
    assert heard_part(text, 0.1) == ""


def frames(pattern: str, n: int = 160) -> list[tuple[np.ndarray, bool]]:
    """'s' = voiced frame, '.' = not; each frame carries its index as its value."""
    return [(np.full(n, i, dtype=np.int16), c == "s") for i, c in enumerate(pattern)]


def run(detector: TurnDetector, pattern: str) -> list[tuple[int, str]]:
    return [(i, e) for i, (f, v) in enumerate(frames(pattern)) if (e := detector.feed(f, v))]


def test_turn_detector_needs_three_of_four_voiced_frames() -> None:
    assert run(TurnDetector(), "s.s...s..s.s......") == []
    assert run(TurnDetector(endpointing_ms=100), "..s.ss" + "." * 5) == [(5, "start"), (10, "end")]


def test_turn_detector_utterance_has_preroll_and_a_short_tail() -> None:
    detector = TurnDetector(endpointing_ms=200, preroll_ms=60)
    events = run(detector, "." * 10 + "sss" + "s" * 5 + "." * 10)
    assert events == [(12, "start"), (27, "end")]
    audio = detector.utterance()
    first = audio[0]
    assert first == 10 - 3  # 60 ms (3 frames) before the first voiced frame
    assert audio[-1] == 17 + 5  # 100 ms of the trailing silence kept
    assert len(audio) % 160 == 0


def test_turn_detector_caps_utterance_length() -> None:
    detector = TurnDetector(max_utterance_ms=200)
    # 10 frames in all, counting the three that started it.
    assert run(detector, "s" * 20)[:2] == [(2, "start"), (9, "end")]


def test_history_trims_at_a_user_message_and_drops_empty_assistant_text() -> None:
    history = History(max_messages=4)
    history.add_user("a")
    message = history.add_assistant("")
    history.add_tool_call(message, ToolCallRequest("c1", "t", {"x": 1}))
    history.add_tool_result("c1", "{}")
    history.add_assistant("done")
    history.add_user("b")
    assert [m["role"] for m in history.items] == ["user"]
    history.add_assistant("")
    assert history.messages("sys") == [{"role": "system", "content": "sys"}, {"role": "user", "content": "b"}]


def test_history_add_takes_a_ready_made_message_and_trims_like_the_typed_adders() -> None:
    history = History(max_messages=2)
    context = {"role": "system", "content": "The caller is on the pricing page."}
    assert history.add(context) is context and history.items == [context]
    history.add_user("a")
    history.add_assistant("b")
    assert [m["role"] for m in history.items] == ["user", "assistant"]


def test_agent_config_from_seed_fields_ignores_nulls_and_unknowns() -> None:
    cfg = AgentConfig.from_agent({"welcome_message": "Hi", "temperature": None, "duty": "support",
                                  "call_end_duration": 20000, "speed": 1.2},
                                 stt=FakeSTT(), llm=FakeLLM(), tts=FakeTTS())
    assert cfg.welcome_message == "Hi" and cfg.temperature is None and cfg.call_end_duration == 20000
    assert cfg.speed == 1.2 and cfg.endpointing_ms == 500
    assert cfg.welcome_for("inbound") == "Hi"


async def test_fake_providers_follow_the_protocols() -> None:
    stt, llm, tts = FakeSTT(["first", "second"]), FakeLLM(), FakeTTS()
    assert isinstance(stt, SpeechToText) and isinstance(llm, LanguageModel) and isinstance(tts, TextToSpeech)
    audio = np.zeros(16000, dtype=np.int16)
    assert await stt.transcribe(audio, final=False) == "first"
    assert [await stt.transcribe(audio) for _ in range(3)] == ["first", "second", "second"]
    chunks = [c async for c in llm.stream([{"role": "user", "content": "open at nine?"}])]
    assert len(chunks) > 2 and all(isinstance(c, TextDelta) for c in chunks)
    assert "".join(c.text for c in chunks) == "You said: open at nine."
    text = "You said: open at nine."
    normal = np.concatenate([c async for c in tts.synthesize(text)])
    fast = np.concatenate([c async for c in tts.synthesize(text, speed=2.0)])
    assert len(normal) == pytest.approx(len(text) * 0.06 * 16000, abs=2)
    assert len(fast) == pytest.approx(len(normal) / 2, abs=2)
    assert dbfs(normal) > -25
