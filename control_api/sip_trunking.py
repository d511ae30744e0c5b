"""The server's side of trunks for the SIP user agent: who may call us (admission from settings, with the stored
trunks' hosts as trusted sources) and which trunks we stay registered with.

    trunking = Trunking(settings, db, metrics)     # before the user agent starts: `trunking.admission`
    await trunking.start(ua)                       # resolve trunk hosts, start registrations; refreshed every minute
    await trunking.changed()                       # after a trunk was stored, changed or deleted
    trunking.registration(trunk_id)                # RegistrationStatus | None (GET /sip-trunks)
    await trunking.close()                         # unregister (Expires: 0), stop

Trunk hosts are resolved by DNS off the event loop (their SRV targets and their own addresses, signalling.sip.dns);
a host that does not resolve is skipped until the next refresh. See docs/sip.md, "Who may call" and "Registration".
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from functools import partial

from control_api.metrics import Metrics
from control_api.settings import Settings
from control_api.storage import Database
from control_api.storage.models import SipTrunk
from control_api.storage.sip_trunks import all_trunks
from media.tasks import cancel_and_wait
from signalling.sip import SipUserAgent, Trunk, TrunkError, parse_hostport
from signalling.sip.admission import Admission, AdmissionPolicy, parse_networks, parse_users
from signalling.sip.dns import SipLocator
from signalling.sip.register import STATES, Registration, RegistrationStatus
from signalling.sip.stream_transport import StreamLimits, StreamOptions, client_context, server_context

log = logging.getLogger(__name__)

REFRESH_SECONDS = 60.0
DEFAULT_TRUNK = "default"  # the registration key of TALKWIRE_SIP_TRUNK


def admission_policy(settings: Settings) -> AdmissionPolicy:
    return AdmissionPolicy(
        allow_from=parse_networks(settings.sip_allow_from),
        users=parse_users(settings.sip_inbound_users),
        realm=settings.sip_inbound_realm,
        invites_per_second=settings.sip_invites_per_second,
        invite_burst=settings.sip_invite_burst,
        max_inbound_calls=settings.sip_max_inbound_calls,
        max_unacked=settings.sip_max_unacked,
    )


def stream_options(settings: Settings) -> StreamOptions:
    """TCP/TLS listening ports and TLS contexts from settings (ValueError when the TLS port lacks a certificate)."""
    tls_server = None
    if settings.sip_tls_bind:
        if not settings.sip_tls_cert:
            raise ValueError("TALKWIRE_SIP_TLS_BIND needs TALKWIRE_SIP_TLS_CERT (and TALKWIRE_SIP_TLS_KEY)")
        tls_server = server_context(settings.sip_tls_cert, settings.sip_tls_key)
    return StreamOptions(
        tcp_bind=parse_hostport(settings.sip_tcp_bind) if settings.sip_tcp_bind else None,
        tls_bind=parse_hostport(settings.sip_tls_bind, 5061) if settings.sip_tls_bind else None,
        tls_server=tls_server,
        tls_client=client_context(settings.sip_tls_verify, settings.sip_tls_ca_file),
        limits=StreamLimits(max_connections=settings.sip_stream_max_connections,
                            idle_timeout=settings.sip_stream_idle_timeout),
    )


def registering_trunk(row: SipTrunk) -> Trunk:
    return Trunk(row.host, row.port or 5060, row.username or None, row.password or None, register=True,
                 transport=(row.transport or "udp").lower(), srtp=bool(row.srtp))


class Trunking:
    def __init__(self, settings: Settings, db: Database, metrics: Metrics) -> None:
        self.settings = settings
        self.db = db
        self.admission = Admission(admission_policy(settings))
        self.registrations: dict[str, Registration] = {}
        self._ua: SipUserAgent | None = None
        self.locator = SipLocator()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._default = self._default_trunk()
        for state in STATES:
            metrics.sip_registrations.labels(state).set_function(partial(self._count, state))

    def _default_trunk(self) -> Trunk | None:
        if not self.settings.sip_trunk:
            return None
        try:
            return Trunk.parse(self.settings.sip_trunk)
        except TrunkError:
            return None  # reported when a call is dialled through it

    def _count(self, state: str) -> int:
        return sum(1 for reg in self.registrations.values() if reg.status.state == state)

    def registration(self, trunk_id: str) -> RegistrationStatus | None:
        reg = self.registrations.get(trunk_id)
        return reg.status if reg is not None else None

    async def start(self, ua: SipUserAgent) -> None:
        self._ua = ua
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._refresh_loop(), name="sip-trunk-refresh")

    async def close(self) -> None:
        await cancel_and_wait([*self._background, self._task])
        await asyncio.gather(*(reg.close() for reg in self.registrations.values()), return_exceptions=True)
        self.registrations.clear()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception:
                log.exception("refreshing the SIP trunks failed")

    async def refresh(self) -> None:
        """Re-read the stored trunks: registrations started, changed or stopped, and the trusted sources for
        admission resolved (waits for DNS)."""
        hosts = await self._registrations()
        self.admission.set_trunk_sources(await resolve_all(self.locator, hosts))

    async def changed(self) -> None:
        """A trunk was stored, changed or deleted: registrations follow at once, the trusted sources once DNS
        answered (in the background: an API request never waits on a name server)."""
        hosts = await self._registrations()
        task = asyncio.get_running_loop().create_task(self._resolve_sources(hosts), name="sip-trunk-sources")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _resolve_sources(self, hosts: list[str]) -> None:
        self.admission.set_trunk_sources(await resolve_all(self.locator, hosts))

    async def _registrations(self) -> list[str]:
        """Reconcile the registrations with the stored trunks; returns every trunk host (for the sources)."""
        async with self._lock:
            rows = await all_trunks(self.db)
            wanted = {row.id: registering_trunk(row) for row in rows if row.register}
            if self._default is not None and self._default.register:
                wanted[DEFAULT_TRUNK] = self._default
            await self._reconcile(wanted)
        return [row.host for row in rows] + ([self._default.host] if self._default is not None else [])

    async def _reconcile(self, wanted: dict[str, Trunk]) -> None:
        ua = self._ua
        if ua is None:
            return
        for key in [k for k, reg in self.registrations.items() if wanted.get(k) != reg.trunk]:
            await self.registrations.pop(key).close()
        for key, trunk in wanted.items():
            if key not in self.registrations:
                reg = Registration(ua.transactions, ua.builder, ua.endpoint.resolve, trunk,
                                   expires=self.settings.sip_register_expires)
                self.registrations[key] = reg
                reg.start()


async def resolve_all(locator: SipLocator, hosts: Iterable[str]) -> set[str]:
    """The IP addresses of `hosts` (their SRV targets' and their own), looked up concurrently by DNS."""

    async def one(host: str) -> list[str]:
        try:
            return [target.host for target in await locator.locate(host, None, None)]
        except OSError as exc:
            log.warning("SIP trunk host %s does not resolve: %s", host, exc)
            return []

    found = await asyncio.gather(*(one(host) for host in set(hosts)))
    return {address for addresses in found for address in addresses}
