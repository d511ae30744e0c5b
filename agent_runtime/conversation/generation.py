"""Generating a reply: the LLM stream cut into sentences for the speaker, tool rounds, context between turns.

A reply's first piece may end at a comma after FIRST_CLAUSE_WORDS words (later ones after 6), or before a
joining word ("that", "from", "because") after FIRST_JOIN_WORDS: the caller waits for the first piece's
tokens and TTS, and a short clause ("I'm sorry for any confusion,", "The store is open") is synthesized
sooner; the rest is synthesized while it plays (see sentences.py).
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import aclosing
from typing import Any

from agent_runtime.conversation.host import ConversationHost
from agent_runtime.conversation.reply import Apology, Reply
from agent_runtime.providers.base import ProviderError, TextDelta, ToolCallRequest
from agent_runtime.sentences import SentenceSplitter
from agent_runtime.tools_api import (
    END_CALL_DEFINITION,
    BuiltinOutcome,
    ToolOutcomeLike,
    run_builtin,
)

log = logging.getLogger(__name__)

FIRST_CLAUSE_WORDS = 3
FIRST_JOIN_WORDS = 4


class Generator:
    def __init__(self, host: ConversationHost) -> None:
        self.host = host
        self.pending_context: list[dict[str, Any]] = []  # joins the history before the next LLM request
        self._tool_call_ids: set[str] = set()

    def flush_context(self) -> None:
        for message in self.pending_context:
            self.host.history.add(message)
        self.pending_context.clear()

    def fixed(self, reply: Reply, text: str) -> None:
        """Fill `reply` with set words (welcome, silence alert, error message), cut into sentences."""
        message = self.host.history.add_assistant(text)
        reply.messages.append(message)
        splitter = SentenceSplitter()
        for piece in [*splitter.push(text), splitter.flush()]:
            if piece:
                reply.pieces.put_nowait((piece, message))
        reply.pieces.put_nowait(None)

    def apology(self, reply: Reply) -> None:
        """Fill `reply` with the local voice's apology only (a provider failed before there was a reply)."""
        reply.pieces.put_nowait(Apology(self.host.stages.language.apology()))
        reply.pieces.put_nowait(None)

    def _tool_definitions(self) -> list[dict[str, Any]]:
        tools = self.host.tools
        if tools is None:
            return [END_CALL_DEFINITION]
        return list(tools.definitions(self.host.leg.channel))

    async def run(self, reply: Reply) -> None:
        """The LLM loop: stream text into the speaker, run tool calls, call the LLM again (bounded)."""
        loop = asyncio.get_running_loop()
        host = self.host
        config, history = host.config, host.history
        llm, language = host.stages.llm, host.stages.language
        definitions = self._tool_definitions()
        try:
            for round_no in range(config.max_tool_rounds + 1):
                self.flush_context()
                message = history.add_assistant("")
                reply.messages.append(message)
                splitter = (SentenceSplitter(first_comma_words=FIRST_CLAUSE_WORDS, first_join_words=FIRST_JOIN_WORDS)
                            if round_no == 0 else SentenceSplitter())
                calls: list[ToolCallRequest] = []
                started = loop.time()
                messages = history.messages(language.prompt(config.agent_prompt))
                if host.turn_extras is not None:
                    messages += host.turn_extras()
                stream = llm.stream(
                    messages, tools=definitions or None,
                    temperature=config.temperature, top_p=config.top_p)
                async with aclosing(stream):
                    async for chunk in stream:
                        if reply.cancelled:
                            return
                        if reply.llm_first_token_ms is None:
                            reply.llm_first_token_ms = (loop.time() - started) * 1000
                        if isinstance(chunk, TextDelta):
                            message["content"] += chunk.text
                            for piece in splitter.push(chunk.text):
                                reply.pieces.put_nowait((piece, message))
                        elif isinstance(chunk, ToolCallRequest):
                            # Ids must be unique in the call (clients match answers and drop repeats by
                            # id); some OpenAI-compatible servers number them per response ("call_0").
                            if not chunk.id or chunk.id in self._tool_call_ids:
                                chunk = ToolCallRequest(f"call_{uuid.uuid4().hex[:16]}", chunk.name,
                                                        chunk.arguments)
                            self._tool_call_ids.add(chunk.id)
                            calls.append(chunk)
                tail = splitter.flush()
                if tail:
                    reply.pieces.put_nowait((tail, message))
                if not calls:
                    return
                if round_no == config.max_tool_rounds:
                    log.warning("the LLM still asks for tools after %d rounds; answering without them", round_no)
                    return
                if reply.held:  # no tool runs before the turn really ended (a speculative reply)
                    await reply.released.wait()
                    if reply.cancelled:
                        return
                for call in calls:
                    history.add_tool_call(message, call)
                    reply.open_tool_calls.append(call.id)
                for call in calls:
                    outcome = await self._execute(call)
                    if reply.cancelled:
                        return
                    history.add_tool_result(call.id, outcome.content)
                    reply.open_tool_calls.remove(call.id)
                    action = outcome.action
                    if action and action.get("type") == "end_call":
                        reply.end_call = True
                    elif action:
                        reply.actions.append(action)
                if reply.end_call or reply.actions:
                    return  # the call ends or another party takes over once these words have played
        except ProviderError as exc:
            if reply.cancelled:
                return
            log.info("no reply from the language model: %s", exc)  # reported by the guarded stage
            reply.pieces.put_nowait(Apology(language.apology()))
        finally:
            reply.pieces.put_nowait(None)

    async def _execute(self, call: ToolCallRequest) -> ToolOutcomeLike:
        tools = self.host.tools
        if tools is None:
            return run_builtin(call)
        try:
            return await tools.execute(call, self.host.context)
        except Exception as exc:  # the tools layer reports failures as outcomes; this is a bug there
            log.exception("tool %s raised", call.name)
            return BuiltinOutcome(call.id, call.name, {"status": "error", "error": f"the tool failed: {exc}"},
                                  is_error=True)
