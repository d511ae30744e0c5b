"""Cut streaming LLM text into pieces to speak, and cut spoken text to what was heard.

The first piece should reach TTS early, so the splitter does not wait for whole replies: it cuts after
`. ! ? ; :` (and newlines) followed by a space, and after a comma once the clause has `min_comma_words`
words (`first_comma_words` for the first piece, which can be shorter: it is what the caller waits for).
The first piece may also end before a joining word ("and", "that", "because", "from"; Hindi "कि", "और")
once it has `first_join_words` words: a long first sentence without a comma ("The return policy is that
you can return any item that is not available to you within 24 hours.") would otherwise keep the caller
waiting for all its tokens and for the TTS of all its words (Piper: ~470 ms for those 19 words, ~150 ms
for 5), while the rest is synthesized during the first part's playback.
"3.5" or "e.g." inside a piece do not cut, because a cut needs whitespace after the mark; a dotted
abbreviation followed by a space ("Dr. Smith") does cut, which costs a short pause at most.
"""
from __future__ import annotations

import re

_HARD = re.compile(r"[.!?;:…।॥]+[\"')\]]*\s|\n+")
_COMMA = re.compile(r",\s")
# Words that open a clause or phrase: a spoken sentence can pause before them. Not "of" or "to", which
# bind to the word before them ("the standards of", "I'd like to").
JOINING_WORDS = (
    "and", "but", "or", "so", "because", "that", "which", "who", "where", "when", "while", "if", "unless",
    "until", "since", "although", "though", "by", "for", "from", "with", "at", "in", "on", "after", "before",
    "और", "लेकिन", "क्योंकि", "कि", "जो", "अगर",
)
_JOIN = re.compile(r"\s(?:" + "|".join(JOINING_WORDS) + r")(?=\s)", re.IGNORECASE)
ELLIPSIS = "…"


class SentenceSplitter:
    def __init__(self, min_comma_words: int = 6, first_comma_words: int | None = None,
                 first_join_words: int | None = None) -> None:
        self.min_comma_words = min_comma_words
        self.first_comma_words = min_comma_words if first_comma_words is None else first_comma_words
        self.first_join_words = first_join_words  # None: the first piece is not cut before joining words
        self._buffer = ""
        self._cut_any = False

    def push(self, text: str) -> list[str]:
        """Pieces completed by this delta, in order."""
        self._buffer += text
        pieces: list[str] = []
        while True:
            cut = self._next_cut()
            if cut is None:
                return pieces
            piece, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if any(c.isalnum() for c in piece):
                pieces.append(piece)
                self._cut_any = True
            elif pieces and piece:
                pieces[-1] += piece  # stray punctuation ("..." after a cut) joins the previous piece

    def flush(self) -> str | None:
        """The rest at the end of the stream."""
        piece, self._buffer = self._buffer.strip(), ""
        return piece if piece and any(c.isalnum() for c in piece) else None

    def _next_cut(self) -> int | None:
        """Where the next piece ends: the earliest of the hard stop, a comma late enough in the clause, and
        (first piece only) the space before a joining word late enough in it."""
        hard = _HARD.search(self._buffer)
        cuts = [hard.end()] if hard else []
        words = self.min_comma_words if self._cut_any else self.first_comma_words
        for comma in _COMMA.finditer(self._buffer):
            if hard is not None and comma.start() > hard.start():
                break
            if len(self._buffer[:comma.start()].split()) >= words:
                cuts.append(comma.end())
                break
        if not self._cut_any and self.first_join_words is not None:
            for join in _JOIN.finditer(self._buffer):
                if hard is not None and join.start() > hard.start():
                    break
                if len(self._buffer[:join.start()].split()) >= self.first_join_words:
                    cuts.append(join.start() + 1)  # the joining word opens the next piece
                    break
        return min(cuts) if cuts else None


def heard_part(text: str, fraction: float) -> str:
    """The words of `text` the caller heard when `fraction` (0…1) of its audio played.

    Words are weighted by their length in characters (a rough stand-in for their duration); a word
    counts as heard once half of it played.
    """
    if fraction >= 1.0:
        return text
    words = text.split()
    if fraction <= 0.0 or not words:
        return ""
    weights = [len(w) + 1 for w in words]
    total = sum(weights)
    heard, spoken = [], 0.0
    for word, weight in zip(words, weights, strict=True):
        if (spoken + weight / 2) / total > fraction:
            break
        heard.append(word)
        spoken += weight
    return " ".join(heard)
