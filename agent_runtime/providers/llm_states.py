"""Evaluated prompt states of the embedded LLM, kept so a prompt is not evaluated twice.

llama.cpp reuses the longest token prefix of the context it has loaded; with several calls sharing one
model, that context is whichever call ran last. This cache (llama-cpp-python's `LlamaRAMCache`, looked up
by the longest common token prefix) keeps the state after each completion and after a call's prefill,
so a call's turn starts from its own system prompt and history, evaluating only what is new.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from llama_cpp import Llama, LlamaRAMCache, LlamaState

CAPACITY_BYTES = 256 << 20  # SmolLM2-135M: ~23 KB of KV per token, so a few hundred call prompts


class PromptStates(LlamaRAMCache):
    """`LlamaRAMCache` without the logits rows llama-cpp-python copies into each state (n_tokens × vocab
    floats: ~40 MB for a 200-token prompt, not counted against the capacity). They are not needed: a
    restored state is evaluated again from its last token before sampling, and one zero row broadcasts
    into the rows `load_state` fills."""

    def __init__(self, capacity_bytes: int = CAPACITY_BYTES) -> None:
        super().__init__(capacity_bytes)

    def __setitem__(self, key: Sequence[int], value: LlamaState) -> None:
        value.scores = np.zeros((1, value.scores.shape[1]), dtype=np.single)
        super().__setitem__(key, value)


class StatefulLlama(Llama):
    """`Llama` whose saved and restored states leave the logits rows alone.

    llama-cpp-python's `save_state` copies `scores[:n_tokens]` (n_tokens × vocab floats: ~100 MB for a 500-token
    prompt of SmolLM2) and `load_state` writes and scans every row of that 100 MB buffer, once per completion and
    once per turn. PromptStates drops those rows anyway (see above), so both run here on a one-row view of the
    buffer instead (bench_local_stack at temperature 0, alternated runs: caller p50 1164 and 1300 ms with this
    against 1351 and 1407 ms without; docs/performance.md)."""

    def save_state(self) -> LlamaState:
        scores, self.scores = self.scores, self.scores[:1]
        try:
            return super().save_state()
        finally:
            self.scores = scores

    def load_state(self, state: LlamaState) -> None:
        scores, self.scores = self.scores, self.scores[:1]
        try:
            super().load_state(state)
        finally:
            self.scores = scores
