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
        runtime.dialer      # control_api.dialer.Dialer: the campaign dialer (None when SIP is off)
        runtime.analysis    # control_api.analysis.service.PostCallAnalysis: what runs after every call
        runtime.bootstrap   # the default client and its keys, for the start-up banner and demo page

On start, calls this worker left open when it last stopped without finishing them (killed, power lost) are
closed as `failed` / `worker_lost` (`storage.call_recovery`; a member of a deployment does it for its member name,
`cluster.node`), and a sweep fails web calls never connected (`call_sweeper`) while the server runs. Then
post-call analyses a stopped process left pending are resumed, and, with SIP on, the campaign dialer starts
(`start_dialer`: the one seam a deployment of many members goes through; docs/campaigns.md).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from agent_runtime.providers.base import LanguageModel, ProviderRegistry
from agent_runtime.providers.catalog import build_registry, preload
from agent_runtime.providers.catalog import shutdown as shutdown_providers
from agent_runtime.tools.netguard import tls_context
from control_api.analysis.service import PostCallAnalysis
from control_api.call_services import CallServices, worker_name
from control_api.call_sweeper import UnconnectedCallSweeper
from control_api.cluster.leader import run_while_leader
from control_api.cluster.wiring import join as join_cluster
from control_api.demo_agents import provider_choices, seed_demo_agents
from control_api.dialer.loop import Dialer, dialer_name
from control_api.dialer.sip_placer import OutboundCalls, SipPlacer
from control_api.live_calls import LiveCalls
from control_api.media_store import MediaStore
from control_api.metrics import Metrics
from control_api.settings import Settings
from control_api.sip_dispatch import SipDispatcher
from control_api.storage import Database
from control_api.storage.call_recovery import close_abandoned
from control_api.storage.clients import DefaultClient, ensure_default_client
from media.end_reason import EndReason
from media.pacing import MediaClock, settle_heap

log = logging.getLogger(__name__)

async def preload_and_settle(providers: ProviderRegistry) -> None:
    """Warm the default providers, then freeze what loading the models left (calls may be live by now,
    so no collection pause: see media.pacing.settle_heap)."""
    await preload(providers)
    settle_heap(collect=False)


def analysis_models(services: CallServices) -> Callable[[str, str], LanguageModel]:
    """(provider, model) -> the LLM that analyses calls; the default LLM when that one is not configured here
    (as for the agent's own choice, call_agent.build_agent_config). Reads the registry at each call (tests swap it)."""
    def create(provider: str, model: str) -> LanguageModel:
        registry = services.providers
        if registry.has("llm", provider, model):
            return registry.create("llm", provider, model)
        return registry.create("llm")
    return create


class Runtime:
    def __init__(self, services: CallServices, bootstrap: DefaultClient) -> None:
        self.services = services
        self.bootstrap = bootstrap
        self.sip: SipDispatcher | None = None  # the SIP user agent, phone calls and numbers (None when SIP is off)
        self.dialer: Dialer | None = None
        self.analysis = PostCallAnalysis(services.db, analysis_models(services),
                                         model_override=services.settings.analysis_model,
                                         timeout=services.settings.analysis_timeout)
        services.analysis = self.analysis

    def start_dialer(self, calls: OutboundCalls | None = None) -> Dialer | None:
        """Start the campaign dialer, placing calls through `calls` (default: this process's SIP dispatch; None
        when there is neither). It runs only while this process holds the deployment's `dialer` lock
        (`cluster.leader`; PostgreSQL advisory lock), so one member of a deployment dials; on SQLite it simply runs."""
        calls = calls or self.sip
        if calls is None or self.dialer is not None:
            return self.dialer
        settings = self.settings
        self.dialer = Dialer(self.db, SipPlacer(calls),
                             dialer_id=dialer_name(settings.dialer_id or settings.member_id, settings.data_dir),
                             max_cps=settings.dialer_max_cps)
        self.dialer.start(lambda run: run_while_leader(self.db, "dialer", run))
        return self.dialer

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
                llm_model_path=settings.llm_model_path,
                piper_voice_path=settings.piper_voice_path,
                llm_threads=settings.llm_threads,
                vendors=settings.vendor_config(),
            )
            await seed_demo_agents(db, bootstrap.client_id, provider_choices(providers))
            if not settings.redis_url:  # a member of a deployment does this for its own name (cluster.node)
                lost = await close_abandoned(db, worker_name(settings))
                if lost:
                    log.warning("%d call(s) left open by an earlier run closed as worker_lost", len(lost))
            tls_context()  # the webhook clients' shared TLS context: built now, not during the first call
            warming = asyncio.get_running_loop().create_task(preload_and_settle(providers), name="preload-providers")
            clock.start()
            metrics.start_loop_probe()
            services = CallServices(settings=settings, db=db, clock=clock, providers=providers, metrics=metrics,
                                    media=MediaStore(settings.data_dir / "media"))
            runtime = cls(services, bootstrap)
            sweeper = UnconnectedCallSweeper(db, settings.web_connect_timeout)
            try:
                runtime.sip = await SipDispatcher.start(services)
                sweeper.start()
                await runtime.analysis.resume_pending()
                async with join_cluster(services, runtime.sip) as cluster:  # TALKWIRE_REDIS_URL: drains on shutdown
                    runtime.start_dialer(cluster.outbound if cluster is not None else None)
                    settle_heap()
                    yield runtime
            finally:
                warming.cancel()
                await sweeper.stop()
                # The dialer stops dialing first; its live attempts are recorded as their calls end (else, after
                # 5 s, on the next start as worker_lost).
                dialer_stopped = (asyncio.ensure_future(runtime.dialer.stop(grace=5))
                                  if runtime.dialer is not None else None)
                await services.calls.end_all(EndReason.SERVER_SHUTDOWN)
                if runtime.sip is not None:
                    await runtime.sip.close()
                if dialer_stopped is not None:
                    await dialer_stopped
                await runtime.analysis.close()
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
