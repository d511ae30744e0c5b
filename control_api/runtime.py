"""The process-wide state of a running Talkwire server, opened and closed by the app's lifespan.

    async with Runtime.open(settings) as runtime:
        runtime.services    # control_api.call_services.CallServices: what calls need (the names below)
        runtime.db          # control_api.storage.Database (migrated)
        runtime.clock       # media.pacing.MediaClock, started: the one 20 ms clock of this worker
        runtime.metrics     # control_api.metrics.Metrics: what GET /metrics exports
        runtime.providers   # ProviderRegistry
        runtime.calls       # control_api.live_calls.LiveCalls: live calls by id
        runtime.media       # control_api.media_store.MediaStore: uploads during live calls
        runtime.sip         # control_api.sip_dispatch.SipDispatcher (None when TALKWIRE_SIP_BIND=off)
        runtime.bootstrap   # the default client and its keys, for the start-up banner and demo page
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select

from agent_runtime.providers.base import ProviderRegistry
from agent_runtime.providers.catalog import build_registry, preload
from agent_runtime.providers.catalog import shutdown as shutdown_providers
from agent_runtime.tools.netguard import tls_context
from control_api.call_services import CallServices
from control_api.live_calls import LiveCalls
from control_api.media_store import MediaStore
from control_api.metrics import Metrics
from control_api.settings import Settings
from control_api.sip_dispatch import SipDispatcher
from control_api.storage import Database
from control_api.storage.clients import DefaultClient, ensure_default_client
from control_api.storage.models import Agent, AgentTool, Tool
from media.end_reason import EndReason
from media.pacing import MediaClock, settle_heap
from presets.catalog import seed_bodies
from presets.validation import validate_tool

log = logging.getLogger(__name__)

DEMO_AGENT = {
    "name": "Demo Agent",
    "welcome_message": "Hi! I'm the Talkwire demo agent. What would you like to talk about?",
    "agent_prompt": (
        "You are a friendly voice assistant in a live phone-style conversation. Answer in one or two short "
        "sentences of plain spoken English, with no lists, markup or emojis."
    ),
    "silence_alert_message": "Are you still there?",
    "duty": "support",
}


# The demo page's second agent: it drives the caller's screen with presets (PresetRenderer renders them).
PRESET_DEMO_AGENT = {
    "name": "Preset Demo Agent",
    "welcome_message": "Hi! I can show you forms, a calendar, an upload box and more on this page. What do you need?",
    "agent_prompt": (
        "You are a helpful voice assistant on a web page. You can act on the user's screen with tools: show a "
        "form to collect their details, a calendar to book an appointment, an upload box for a file, take them "
        "to the pricing page, highlight or point at things. Use a tool when it helps, then say in one short "
        "sentence what you did. Speak plain English, one or two short sentences, no lists or markup."
    ),
    "silence_alert_message": "Are you still there?",
    "duty": "support",
}
PRESET_DEMO_TOOLS = ("vanira_form", "vanira_calendar", "vanira_upload", "vanira_navigate",
                     "vanira_highlight_element", "vanira_page_scan", "vanira_point_at")


def provider_choices(providers: ProviderRegistry) -> dict[str, dict[str, str]]:
    """The registry's default providers as an agent's seed fields (model / voice / transcription)."""
    choices: dict[str, dict[str, str]] = {}
    for kind, field_name, name_key in (("llm", "model", "model"), ("tts", "voice", "name"),
                                       ("stt", "transcription", "model")):
        if kind in providers.defaults:
            provider, name = providers.defaults[kind]
            choices[field_name] = {"provider": provider, name_key: name}
    return choices


async def seed_demo_agent(db: Database, client_id: str,
                          choices: dict[str, dict[str, str]] | None = None) -> str | None:
    """Create the demo agent, and the preset demo agent with its preset tools attached, for a client that has
    no agent yet; returns the demo agent's id when created. `choices` are the providers they use (the
    server's defaults at first start, so `--providers fake` seeds agents that run no models)."""
    choices = choices or {}
    bodies = seed_bodies()
    async with db.session() as session:
        if await session.scalar(select(func.count(Agent.id)).where(Agent.client_id == client_id)):
            return None
        agent = Agent(client_id=client_id, **DEMO_AGENT, **choices)
        session.add(agent)
        await session.flush()
        # Listed after the demo agent (lists are ordered by created_at): the demo page preselects the first.
        presets = Agent(client_id=client_id, created_at=agent.created_at + timedelta(milliseconds=1),
                        **PRESET_DEMO_AGENT, **choices)
        session.add(presets)
        await session.flush()
        for preset_id in PRESET_DEMO_TOOLS:
            body = bodies[preset_id]
            # A display name of its own (the LLM calls the seed's ref_code), so the seed's copy-paste bodies
            # a user creates next to it are easy to tell apart.
            body["name"] = f"Demo: {body['name']}"
            if preset_id == "vanira_calendar":  # the seed's slots API is a placeholder: pick a time instead
                body["client_fields"] = {k: v for k, v in body["client_fields"].items()
                                         if not k.startswith("slots_api")}
            tool = Tool(client_id=client_id, **validate_tool(body))
            session.add(tool)
            await session.flush()
            session.add(AgentTool(client_id=client_id, agent_id=presets.id, tool_id=tool.id))
    return agent.id


async def preload_and_settle(providers: ProviderRegistry) -> None:
    """Warm the default providers, then freeze what loading the models left (calls may be live by now,
    so no collection pause: see media.pacing.settle_heap)."""
    await preload(providers)
    settle_heap(collect=False)


class Runtime:
    def __init__(self, services: CallServices, bootstrap: DefaultClient) -> None:
        self.services = services
        self.bootstrap = bootstrap
        self.sip: SipDispatcher | None = None  # the SIP user agent, phone calls and numbers (None when SIP is off)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def clock(self) -> MediaClock:
        return self.services.clock

    @property
    def metrics(self) -> Metrics:
        return self.services.metrics

    @property
    def media(self) -> MediaStore | None:
        return self.services.media

    @property
    def calls(self) -> LiveCalls:
        return self.services.calls

    @property
    def providers(self) -> ProviderRegistry:
        return self.services.providers

    @providers.setter
    def providers(self, registry: ProviderRegistry) -> None:
        """Tests swap the registry on a running server; calls started afterwards use the new one."""
        self.services.providers = registry

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[Runtime]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = await Database.open(settings.effective_database_url)
        clock = MediaClock()
        metrics = Metrics()
        clock.lag_observers.append(metrics.tick_lag.observe)
        try:
            bootstrap = await ensure_default_client(
                db, secret_key=settings.secret_key, publishable_key=settings.publishable_key
            )
            providers = await build_registry(
                mode=settings.providers,
                openai_base_url=settings.openai_base_url,
                openai_api_key=settings.openai_api_key,
                openai_timeout=settings.openai_timeout,
                whisper_model_path=settings.whisper_model_path,
                llm_threads=settings.llm_threads,
                vendors=settings.vendor_config(),
            )
            await seed_demo_agent(db, bootstrap.client_id, provider_choices(providers))
            tls_context()  # the webhook clients' shared TLS context: built now, not during the first call
            warming = asyncio.get_running_loop().create_task(preload_and_settle(providers), name="preload-providers")
            clock.start()
            metrics.start_loop_probe()
            services = CallServices(settings=settings, db=db, clock=clock, providers=providers, metrics=metrics,
                                    media=MediaStore(settings.data_dir / "media"))
            runtime = cls(services, bootstrap)
            try:
                runtime.sip = await SipDispatcher.start(services)
                settle_heap()
                yield runtime
            finally:
                warming.cancel()
                await services.calls.end_all(EndReason.SERVER_SHUTDOWN)
                if runtime.sip is not None:
                    await runtime.sip.close()
                await shutdown_providers()
        finally:
            await metrics.stop_loop_probe()
            await clock.stop()
            await db.close()

    def banner_info(self) -> dict[str, str | None]:
        """What the banner says, as data (`talkwire serve --json`)."""
        base = self.settings.base_url
        return {
            "url": base + "/",
            "data_dir": str(self.settings.data_dir.resolve()),
            "client_id": self.bootstrap.client_id,
            "publishable_key": self.bootstrap.publishable_key,
            "secret_key": self.bootstrap.created_secret_key,  # null unless generated on this start
            "sip": self.sip_address,  # "host:port" of the SIP user agent, null when SIP is off
        }

    @property
    def sip_address(self) -> str | None:
        if self.sip is None:
            return None
        host, port = self.sip.local_address
        return f"{host}:{port}"

    def banner(self) -> str:
        """The start-up text: where the demo is and which keys to use (a generated secret key only once)."""
        base = self.settings.base_url
        lines = [
            "Talkwire is running.",
            f"  Demo page:        {base}/",
            f"  API base URL:     {base}",
            f"  Data directory:   {self.settings.data_dir.resolve()}",
            f"  Publishable key:  {self.bootstrap.publishable_key}",
            f"  SIP (UDP):        {self.sip_address or 'off (TALKWIRE_SIP_BIND=off)'}",
        ]
        if self.bootstrap.created_secret_key:
            lines.append(f"  Secret key:       {self.bootstrap.created_secret_key}")
            lines.append("  (The secret key is stored hashed and is shown only now: save it.)")
        elif self.settings.secret_key:
            lines.append("  Secret key:       from TALKWIRE_SECRET_KEY")
        else:
            lines.append("  Secret key:       created on first start (make another: talkwire keys create)")
        return "\n".join(lines)
