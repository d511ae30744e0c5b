"""Registration of our Contact with a trunk's registrar (RFC 3261 §10), so that inbound calls reach us.

    reg = Registration(transactions, builder, resolve, trunk, expires=3600)
    reg.start()                 # REGISTER now, answer a 401/407 digest challenge, refresh before expiry
    reg.status                  # RegistrationStatus(state, expires_at, last_error)
    await reg.close()           # REGISTER with Expires: 0 (best effort), then stop

A refresh goes out when half the granted time has passed (at most 60 s before expiry for long bindings). A
failure (an error response, wrong credentials, no answer) is retried with exponential back-off (`retry_min` up to
`retry_max` seconds); the state says what the last attempt found.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from media.tasks import cancel_and_wait
from signalling.sip.builder import USER_AGENT, MessageBuilder
from signalling.sip.dialog import new_call_id, new_tag
from signalling.sip.digest import DigestError, authorization
from signalling.sip.dns import Resolve
from signalling.sip.message import Headers, Request, Response, SipParseError, is_digits, parse_name_addr
from signalling.sip.transaction import TransactionLayer, TransactionTimeout
from signalling.sip.trunk import Trunk

log = logging.getLogger(__name__)

STATES = ("unregistered", "registering", "registered", "failed")


@dataclass(frozen=True)
class RegistrationStatus:
    state: str  # one of STATES
    expires_at: float | None  # Unix time the binding runs out (registered only)
    last_error: str | None


class Registration:
    def __init__(self, transactions: TransactionLayer, builder: MessageBuilder, resolve: Resolve, trunk: Trunk, *,
                 expires: int = 3600, retry_min: float = 2.0, retry_max: float = 300.0) -> None:
        self.transactions = transactions
        self.builder = builder
        self.resolve = resolve
        self.trunk = trunk
        self.expires = expires
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.user = trunk.username or "talkwire"
        self.aor = f"sip:{self.user}@{trunk.host}"
        self.registrar_uri = f"sip:{trunk.hostport}"
        self.contact = builder.contact(self.user)
        if trunk.transport != "udp":  # the registrar reaches the binding over the same transport
            self.contact = self.contact[:-1] + f";transport={trunk.transport}>"
        self.call_id = new_call_id(builder.public_host)
        self.tag = new_tag()
        self.cseq = 0
        self.status = RegistrationStatus("unregistered", None, None)
        self.attempts = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self.status = RegistrationStatus("registering", None, None)
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"sip-register-{self.trunk.host}")

    async def close(self, timeout: float = 2.0) -> None:
        """Stop refreshing and remove the binding (Expires: 0) when we had one."""
        await cancel_and_wait([self._task])
        self._task = None
        if self.status.state == "registered":
            try:
                await asyncio.wait_for(self._register(0), timeout)
            except (TimeoutError, OSError, TransactionTimeout, RegistrationFailed):
                pass
        self.status = RegistrationStatus("unregistered", None, None)

    async def _run(self) -> None:
        delay = self.retry_min
        while True:
            if self.status.state != "registered":
                self.status = RegistrationStatus("registering", self.status.expires_at, self.status.last_error)
            try:
                granted = await self._register(self.expires)
            except (RegistrationFailed, TransactionTimeout, OSError) as exc:
                error = str(exc) or "no response from the registrar"
                log.info("registration with %s failed: %s (retry in %.0f s)", self.trunk.hostport, error, delay)
                self.status = RegistrationStatus("failed", None, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            delay = self.retry_min
            self.status = RegistrationStatus("registered", time.time() + granted, None)
            await asyncio.sleep(granted / 2 if granted <= 120 else granted - 60)

    async def _register(self, expires: int) -> int:
        """One REGISTER exchange (with a digest retry per challenge kind); the seconds granted."""
        dest = await self.resolve(self.trunk.host, self.trunk.dns_port, self.trunk.transport)
        auth: list[tuple[str, str]] = []
        answered: set[int] = set()
        while True:
            self.attempts += 1
            txn = self.transactions.start_client(self._request(expires, auth), dest)
            resp = await txn.final
            if 200 <= resp.status < 300:
                return granted_expiry(resp, self.contact, expires)
            if resp.status == 423 and (minimum := resp.headers.get("Min-Expires")) and is_digits(minimum.strip()):
                expires = max(expires, int(minimum))
                continue
            if resp.status in (401, 407) and resp.status not in answered and self.trunk.username:
                answered.add(resp.status)
                auth = [(n, v) for n, v in auth if n not in ("Authorization", "Proxy-Authorization")]
                auth.append(self._answer(resp))
                continue
            raise RegistrationFailed(f"{resp.status} {resp.reason}".strip())

    def _answer(self, resp: Response) -> tuple[str, str]:
        header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        challenge = resp.headers.get(header)
        if challenge is None:
            raise RegistrationFailed(f"{resp.status} without {header}")
        try:
            value = authorization(challenge, username=self.trunk.username or "", password=self.trunk.password or "",
                                  method="REGISTER", uri=self.registrar_uri)
        except DigestError as exc:
            raise RegistrationFailed(str(exc)) from None
        return ("Authorization" if resp.status == 401 else "Proxy-Authorization", value)

    def _request(self, expires: int, auth: list[tuple[str, str]]) -> Request:
        self.cseq += 1
        headers = Headers()
        headers.add("Via", self.builder.via())
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{self.aor}>;tag={self.tag}")
        headers.add("To", f"<{self.aor}>")
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.cseq} REGISTER")
        headers.add("Contact", self.contact)
        headers.add("Expires", str(expires))
        headers.add("User-Agent", USER_AGENT)
        for name, value in auth:
            headers.add(name, value)
        return Request(headers, b"", "REGISTER", self.registrar_uri)


class RegistrationFailed(Exception):
    """The registrar refused the binding (the message is its status line, or why we could not answer it)."""


def granted_expiry(resp: Response, our_contact: str, asked: int) -> int:
    """The binding time the registrar granted: our Contact's `expires` parameter, else Expires, else what we asked."""
    ours = parse_name_addr(our_contact).uri
    found: list[tuple[str, int]] = []
    for value in resp.headers.get_all("Contact"):
        for item in value.split(","):
            try:
                contact = parse_name_addr(item.strip())
            except SipParseError:
                continue
            param = contact.params.get("expires")
            if param and is_digits(param):
                found.append((contact.uri, int(param)))
    for uri, granted in found:
        if uri == ours:
            return granted
    if len(found) == 1:  # a registrar that rewrote our Contact (e.g. added a transport parameter)
        return found[0][1]
    header = (resp.headers.get("Expires") or "").strip()
    return int(header) if is_digits(header) else asked
