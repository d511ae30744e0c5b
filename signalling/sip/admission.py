"""Who may call us: inbound INVITE admission, decided before any RTP port, agent or database work.

An INVITE is admitted when its source address is a trusted one (`allow_from` networks, or a trunk source: the
addresses our trunks' hosts resolve to, kept up to date by whoever owns the trunks) or when it carries digest
credentials of a configured inbound user (RFC 2617 / RFC 7616 with MD5; a 401 challenge first). Anything else is
answered 403 and no call is created. Admitted or not, each source IP has a token bucket of INVITEs (503 with
`Retry-After` when empty), and there are caps on the inbound calls being set up or live and on the inbound
dialogs whose 200 OK is not ACKed yet (503 with `Retry-After` beyond them).

The checks run once per new INVITE (not per packet): a dictionary lookup, a network membership test, and a walk
over the live calls for the caps.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from media.token_bucket import TokenBucket
from signalling.sip.digest import DigestError, digest_response, parse_challenge
from signalling.sip.leg import SipLeg
from signalling.sip.message import Request
from signalling.sip.transaction import Address, ServerTransaction

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
NONCE_LIFETIME = 300.0  # seconds a nonce we issued stays valid
MAX_SOURCES = 10_000  # token buckets kept (least recently used forgotten)


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """`["10.0.0.0/8", "203.0.113.7", "::1"]` → networks (a bare address is its own /32 or /128)."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def parse_users(items: Iterable[str]) -> dict[str, str]:
    """`["alice:secret", "bob:pw"]` → {"alice": "secret", "bob": "pw"} (inbound digest credentials)."""
    users: dict[str, str] = {}
    for item in items:
        name, sep, password = item.strip().partition(":")
        if not sep or not name:
            raise ValueError(f"inbound SIP user {item!r} is not user:password")
        users[name] = password
    return users


@dataclass(frozen=True)
class AdmissionPolicy:
    allow_from: tuple[Network, ...] = field(default_factory=lambda: parse_networks(LOOPBACK))
    users: Mapping[str, str] = field(default_factory=dict)  # inbound digest credentials: user → password
    realm: str = "talkwire"
    invites_per_second: float = 5.0  # per source IP; 0: no rate limit
    invite_burst: int = 20
    max_inbound_calls: int = 0  # inbound calls being set up or live; 0: no cap
    max_unacked: int = 50  # inbound dialogs whose 200 OK is not ACKed yet; 0: no cap
    retry_after: int = 5  # seconds, in the 503s


@dataclass(frozen=True)
class Refusal:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    why: str = ""


@dataclass
class AdmissionCounts:
    admitted: int = 0
    forbidden: int = 0
    challenged: int = 0
    rate_limited: int = 0
    over_capacity: int = 0


class Admission:
    def __init__(self, policy: AdmissionPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self.trunk_sources: frozenset[str] = frozenset()  # IPs our trunks' hosts resolve to
        self.counts = AdmissionCounts()
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._pending: dict[str, ServerTransaction] = {}  # admitted INVITEs not answered yet, by Call-ID
        self._secret = secrets.token_bytes(32)

    def set_trunk_sources(self, addresses: Iterable[str]) -> None:
        self.trunk_sources = frozenset(addresses)

    # ---- the decision
    def check(self, req: Request, source: Address, txn: ServerTransaction, legs: Iterable[SipLeg]) -> Refusal | None:
        """None admits the new INVITE (it then counts against the caps until answered); else how to refuse it."""
        ip = source[0]
        refusal = self._rate(ip) or self._identity(req, ip) or self._capacity(legs)
        if refusal is not None:
            log.info("inbound INVITE %s from %s refused %d (%s)", req.call_id, ip, refusal.status, refusal.why)
            return refusal
        self.counts.admitted += 1
        if self.policy.max_inbound_calls > 0 or self.policy.max_unacked > 0:  # counted until answered (_prune)
            self._pending[req.call_id] = txn
        return None

    def trusted(self, ip: str) -> bool:
        if ip in self.trunk_sources:
            return True
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in self.policy.allow_from)

    def _rate(self, ip: str) -> Refusal | None:
        policy = self.policy
        if policy.invites_per_second <= 0:
            return None
        bucket = self._buckets.get(ip)
        if bucket is None:
            bucket = self._buckets[ip] = TokenBucket(policy.invites_per_second, policy.invite_burst, self.clock)
            if len(self._buckets) > MAX_SOURCES:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(ip)
        wait = bucket.take()
        if wait is None:
            return None
        self.counts.rate_limited += 1
        return self._busy(max(1, int(wait + 0.999)), "rate limit")

    def _identity(self, req: Request, ip: str) -> Refusal | None:
        if self.trusted(ip):
            return None
        if not self.policy.users:
            self.counts.forbidden += 1
            return Refusal(403, why="source not allowed")
        stale = False
        header = req.headers.get("Authorization")
        if header is not None:
            verdict = self._verify(header, req.method)
            if verdict == "ok":
                return None
            if verdict == "forbidden":
                self.counts.forbidden += 1
                return Refusal(403, why="wrong credentials")
            stale = True
        self.counts.challenged += 1
        challenge = (f'Digest realm="{self.policy.realm}", nonce="{self._nonce()}", algorithm=MD5, qop="auth"'
                     + (", stale=true" if stale else ""))
        return Refusal(401, (("WWW-Authenticate", challenge),), "challenged")

    def _capacity(self, legs: Iterable[SipLeg]) -> Refusal | None:
        policy = self.policy
        if policy.max_inbound_calls <= 0 and policy.max_unacked <= 0:
            return None
        self._prune()
        live = unacked = 0
        for leg in legs:
            if leg.direction != "inbound" or leg.ended.done():
                continue
            live += 1
            acked = leg.session.acked
            if acked is not None and not acked.is_set():
                unacked += 1
        setting_up = len(self._pending)
        if policy.max_inbound_calls > 0 and live + setting_up >= policy.max_inbound_calls:
            self.counts.over_capacity += 1
            return self._busy(policy.retry_after, "inbound call cap")
        if policy.max_unacked > 0 and unacked + setting_up >= policy.max_unacked:
            self.counts.over_capacity += 1
            return self._busy(policy.retry_after, "dialogs not ACKed")
        return None

    def _prune(self) -> None:
        """Forget admitted INVITEs that were answered (a 2xx made them a live call) or whose transaction is gone."""
        for call_id, txn in list(self._pending.items()):
            if txn.final_status is not None or txn.layer.server.get(txn.key) is not txn:
                del self._pending[call_id]

    @staticmethod
    def _busy(retry_after: int, why: str) -> Refusal:
        return Refusal(503, (("Retry-After", str(retry_after)),), why)

    # ---- digest (server side)
    def _nonce(self) -> str:
        stamp = f"{int(self.clock() * 1000):x}"
        return f"{stamp}.{self._sign(stamp)}"

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def _fresh(self, nonce: str) -> bool:
        stamp, _, mac = nonce.partition(".")
        if not hmac.compare_digest(mac, self._sign(stamp)):
            return False
        try:
            issued = int(stamp, 16) / 1000
        except ValueError:
            return False
        return 0 <= self.clock() - issued <= NONCE_LIFETIME

    def _verify(self, header: str, method: str) -> str:
        """"ok", "stale" (not our nonce, or an old one: challenge again) or "forbidden" (wrong credentials)."""
        try:
            params = parse_challenge(header)
        except DigestError:
            return "stale"
        if not self._fresh(params["nonce"]) or params["realm"] != self.policy.realm:
            return "stale"
        password = self.policy.users.get(params.get("username", ""))
        qop = params.get("qop") or None
        if password is None or "uri" not in params or (qop is not None and qop != "auth"):
            return "forbidden"
        expected = digest_response(username=params["username"], password=password, realm=params["realm"],
                                   nonce=params["nonce"], method=method, uri=params["uri"], qop=qop,
                                   nc=params.get("nc", ""), cnonce=params.get("cnonce"))
        return "ok" if hmac.compare_digest(expected, params.get("response", "")) else "forbidden"
