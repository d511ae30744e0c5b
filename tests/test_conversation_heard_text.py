"""What the caller heard of a reply cut at a play position (`conversation.heard`): pure, no loop, no audio."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent_runtime.conversation.heard import INTERRUPTED_TOOL_RESULT, heard_text, keep_heard
from agent_runtime.conversation.reply import Segment
from agent_runtime.history import History
from agent_runtime.providers.base import ToolCallRequest
from agent_runtime.sentences import ELLIPSIS


def laid_out(message: dict, *texts: str, start: int = 0, per_char: int = 100) -> list[Segment]:
    """Segments of `message` played back to back from `start`, `per_char` samples per character."""
    segments = []
    for text in texts:
        end = start + per_char * len(text)
        segments.append(Segment(text, message, start, end))
        start = end
    return segments


def test_a_reply_played_to_its_end_is_kept_whole() -> None:
    message = {"role": "assistant", "content": "One. Two."}
    segments = laid_out(message, "One.", "Two.")
    heard = heard_text(segments, 800, all_queued=True)
    assert not heard.cut
    assert heard.text_of(message) == "One. Two."
    assert heard.all_text == "One. Two."


def test_a_sentence_cut_halfway_keeps_its_words_in_proportion_and_is_marked() -> None:
    message = {"role": "assistant", "content": ""}
    segments = laid_out(message, "Hello there.", "one two three four")
    first_end = segments[0].end
    assert first_end is not None
    heard = heard_text(segments, first_end + 900, all_queued=True)  # half of the second's 1800 samples
    assert heard.cut
    assert heard.text_of(message) == "Hello there. one two" + ELLIPSIS
    assert heard.all_text == "Hello there. one two"


def test_a_cut_exactly_between_sentences_keeps_the_first_and_marks_the_cut() -> None:
    message = {"role": "assistant", "content": ""}
    segments = laid_out(message, "First.", "Second.")
    heard = heard_text(segments, 600, all_queued=True)
    assert heard.text_of(message) == "First." + ELLIPSIS


def test_nothing_played_is_nothing_heard() -> None:
    message = {"role": "assistant", "content": "Hi."}
    heard = heard_text(laid_out(message, "Hi.", start=1000), 1000, all_queued=True)
    assert heard.cut and heard.text_of(message) == "" and heard.all_text == ""


def test_a_reply_still_being_synthesized_is_cut_even_if_all_its_queued_audio_played() -> None:
    message = {"role": "assistant", "content": "Yes."}
    heard = heard_text(laid_out(message, "Yes."), 400, all_queued=False)
    assert heard.text_of(message) == "Yes." + ELLIPSIS


def test_a_sentence_that_never_got_audio_counts_as_a_cut() -> None:
    message = {"role": "assistant", "content": ""}
    segments = [*laid_out(message, "Sure."), Segment("Never synthesized.", message)]
    heard = heard_text(segments, 500, all_queued=True)
    assert heard.text_of(message) == "Sure." + ELLIPSIS


def test_each_message_keeps_its_own_words() -> None:
    before, after = {"role": "assistant", "content": ""}, {"role": "assistant", "content": ""}
    segments = laid_out(before, "Let me check.") + laid_out(after, "It opens at nine.", start=1300)
    heard = heard_text(segments, 1300 + 850, all_queued=True)
    assert heard.text_of(before) == "Let me check." + ELLIPSIS
    assert heard.text_of(after) == "It opens" + ELLIPSIS
    assert heard.all_text == "Let me check. It opens"


def test_keep_heard_cuts_history_to_what_was_heard() -> None:
    history = History()
    history.add_user("when do you open")
    spoken = history.add_assistant("Let me check. I am looking.")
    tool_message = history.add_assistant("")
    history.add_tool_call(tool_message, ToolCallRequest("call_1", "lookup", {}))
    unheard = history.add_assistant("It opens at nine.")
    segments = laid_out(spoken, "Let me check.", "I am looking.") + laid_out(unheard, "It opens at nine.",
                                                                            start=5000)
    heard = heard_text(segments, 1300 + 400, all_queued=True)
    keep_heard(history, [spoken, tool_message, unheard], ["call_1"], heard)
    assert [m.get("content") for m in history.items] == [
        "when do you open", "Let me check. I am" + ELLIPSIS, "", INTERRUPTED_TOOL_RESULT]
    assert history.items[2]["tool_calls"][0]["id"] == "call_1"  # a tool call stays, with its result
    assert history.items[3]["tool_call_id"] == "call_1"


@given(st.lists(st.text(alphabet="abc ", min_size=1, max_size=12).filter(str.strip), min_size=1, max_size=4),
       st.integers(0, 6000), st.integers(0, 6000))
def test_heard_text_is_a_prefix_that_grows_with_what_played(texts: list[str], a: int, b: int) -> None:
    message = {"role": "assistant", "content": ""}
    segments = laid_out(message, *texts)
    full = " ".join(" ".join(t.split()) for t in texts).split()
    early, late = sorted((a, b))
    heard_early = heard_text(segments, early, all_queued=True).all_text.split()
    heard_late = heard_text(segments, late, all_queued=True).all_text.split()
    assert heard_late[:len(heard_early)] == heard_early
    assert full[:len(heard_late)] == heard_late
