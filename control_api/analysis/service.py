"""Post-call analysis off the call's path: `schedule(call_id)` when a call ends, a background task does the rest.

    analysis = PostCallAnalysis(db, models, model_override=settings.analysis_model, timeout=settings.analysis_timeout)
    analysis.schedule(call_id)          # returns at once; never delays hang-up or the next call
    await analysis.resume_pending()     # at start-up: analyses a stopped process left `pending`
    await analysis.close()              # at shutdown

The model is `TALKWIRE_ANALYSIS_MODEL` (`PROVIDER/model`) when set, else the agent's own LLM. A call with no
speech from the person, or an agent with nothing to extract and no success metric, skips the model.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agent_runtime.providers.base import LanguageModel
from control_api.analysis.extract import AnalysisFailed, Extraction, Sleep, extract
from control_api.analysis.fields import fields_from_input_format
from control_api.analysis.request import success_criteria
from control_api.storage import Database
from control_api.storage import analysis as store
from media.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# (provider, model) -> a language model; raises when that model is not configured here
ModelFactory = Callable[[str, str], LanguageModel]


def parse_model(name: str) -> tuple[str, str]:
    """`PROVIDER/model` (the model part may hold more slashes)."""
    provider, _, model = name.partition("/")
    if not provider or not model:
        raise ValueError(f"{name!r} is not PROVIDER/model")
    return provider, model


class PostCallAnalysis:
    def __init__(self, db: Database, models: ModelFactory, *, model_override: str | None = None,
                 timeout: float = 60.0, tries: int = 3, backoff: float = 1.0,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.db = db
        self.models = models
        self.override = parse_model(model_override) if model_override else None
        self.timeout = timeout
        self.tries = tries
        self.backoff = backoff
        self._sleep = sleep
        self._tasks: set[asyncio.Task[str]] = set()

    def schedule(self, call_id: str) -> asyncio.Task[str]:
        task = asyncio.create_task(self.run(call_id), name=f"analysis-{call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def resume_pending(self) -> int:
        ids = await store.pending_call_ids(self.db)
        for call_id in ids:
            self.schedule(call_id)
        return len(ids)

    async def close(self, grace: float = 5.0) -> None:
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=grace)
        await cancel_and_wait(late)  # left `pending`: resumed on the next start

    async def run(self, call_id: str) -> str:
        """Analyse one ended call; its final state (`done` or `failed`). Never raises."""
        try:
            return await self._run(call_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("post-call analysis of %s failed", call_id)
            try:
                await store.set_state(self.db, call_id, "failed", f"internal error: {exc}"[:500])
            except Exception:
                log.exception("recording the failed analysis of %s failed", call_id)
            return "failed"

    async def _run(self, call_id: str) -> str:
        await store.set_state(self.db, call_id, "pending")
        job = await store.load_job(self.db, call_id)
        if job is None:
            return "failed"
        criteria = success_criteria(job.success_metric)
        fields = [*job.fields, *fields_from_input_format(job.input_format, (f.key for f in job.fields))]
        if not any(turn.role == "user" for turn in job.turns):
            await store.save_result(self.db, call_id, Extraction([], {}, {}, None, tries=0), "no_user_speech")
            return "done"
        if not fields and criteria is None:
            await store.save_result(self.db, call_id, Extraction([], {}, {}, None, tries=0), "nothing_to_extract")
            return "done"
        try:
            provider, name = self.override or (str(job.model.get("provider")), str(job.model.get("model")))
            llm = self.models(provider, name)
        except Exception as exc:
            await store.set_state(self.db, call_id, "failed", f"no model for the analysis: {exc}"[:500])
            return "failed"
        try:
            result = await extract(llm, job.turns, fields, criteria, timeout=self.timeout, tries=self.tries,
                                   backoff=self.backoff, sleep=self._sleep)
        except AnalysisFailed as exc:
            await store.set_state(self.db, call_id, "failed", str(exc))
            return "failed"
        await store.save_result(self.db, call_id, result)
        return "done"

