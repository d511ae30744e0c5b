"""SIP message parsing and serialisation (RFC 3261 §7, §20, §25) for datagrams.

Parsing is strict about what the user agent relies on (start line, Via, From, To, Call-ID, CSeq,
Content-Length) and lenient about the rest: compact header names are expanded, folded lines are
joined, and comma-separated values of the list headers (Via, Contact, Route, Record-Route) become
separate entries. Anything malformed raises `SipParseError` (a ValueError) and nothing else.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

SIP_VERSION = "SIP/2.0"

COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length", "c": "Content-Type",
    "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via", "o": "Event", "r": "Refer-To",
    "b": "Referred-By", "u": "Allow-Events", "x": "Session-Expires", "a": "Accept-Contact",
    "j": "Reject-Contact", "d": "Request-Disposition", "y": "Identity", "n": "Identity-Info",
}
_CANONICAL = {name.lower(): name for name in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Route", "Record-Route",
    "Content-Type", "Content-Length", "Allow", "Supported", "Require", "User-Agent", "Server",
    "WWW-Authenticate", "Authorization", "Proxy-Authenticate", "Proxy-Authorization", "Event",
    "Subscription-State", "Refer-To", "Referred-By", "Expires", "Accept", "Reason", "Allow-Events",
    "Session-Expires", "Min-SE", "Retry-After", "Warning", "Unsupported", "Content-Encoding",
    "Content-Disposition", "Subject", "Date", "Timestamp",
)} | {"cseq": "CSeq", "call-id": "Call-ID", "www-authenticate": "WWW-Authenticate"}
# Headers whose comma-separated values are separate entries (RFC 3261 §7.3.1).
_LIST_HEADERS = {"via", "contact", "route", "record-route"}

_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")


class SipParseError(ValueError):
    """A datagram that is not a well-formed SIP message. `request` is the request as far as it could be read
    when its start line and the headers a response needs (Via, From, To, Call-ID, CSeq) were sound, so the
    endpoint can answer 400; None otherwise."""

    def __init__(self, message: str, request: Request | None = None) -> None:
        super().__init__(message)
        self.request = request


def is_digits(text: str) -> bool:
    """ASCII decimal digits only: `str.isdigit()` also accepts "²" or "٣", which `int()` then refuses."""
    return text.isascii() and text.isdigit()


def canonical_name(name: str) -> str:
    lower = name.lower()
    if lower in COMPACT:
        return COMPACT[lower]
    return _CANONICAL.get(lower, name)


def split_outside(value: str, sep: str) -> list[str]:
    """Split on `sep` where it is outside double quotes and angle brackets."""
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    while i < len(value):
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append(value[start:i])
            start = i + 1
        i += 1
    parts.append(value[start:])
    return parts


def parse_params(text: str) -> dict[str, str | None]:
    """`;a=1;b;c="x"` (leading semicolon optional) → {"a": "1", "b": None, "c": "x"}; keys lower-cased."""
    params: dict[str, str | None] = {}
    for part in split_outside(text, ";"):
        part = part.strip()
        if not part:
            continue
        key, eq, val = part.partition("=")
        val = val.strip()
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = val[1:-1]
        params[key.strip().lower()] = val if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


class Headers:
    """Ordered, case-insensitive, multi-valued header list."""

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        for name, value in items or []:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical_name(name), str(value)))

    def get(self, name: str, default: str | None = None) -> str | None:
        want = canonical_name(name).lower()
        for key, value in self._items:
            if key.lower() == want:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        want = canonical_name(name).lower()
        return [value for key, value in self._items if key.lower() == want]

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        want = canonical_name(name).lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != want]

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def copy(self) -> Headers:
        new = Headers()
        new._items = list(self._items)
        return new


@dataclass
class SipUri:
    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str = ""

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        tail = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{userinfo}{self.hostport}{format_params(self.params)}{tail}"


def parse_uri(text: str) -> SipUri:
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("sip", "sips", "tel"):
        raise SipParseError(f"not a SIP URI: {text[:80]!r}")
    if scheme == "tel":
        number, _, params = rest.partition(";")
        return SipUri("tel", number, None, "", None, parse_params(params))
    rest, _, uri_headers = rest.partition("?")
    user = password = None
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, pcolon, pw = userinfo.partition(":")
        password = pw if pcolon else None
    hostport, _, params = rest.partition(";")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise SipParseError("bad IPv6 reference")
        host, portpart = hostport[1:end], hostport[end + 1:]
        if portpart and not portpart.startswith(":"):
            raise SipParseError("bad host:port")
        portpart = portpart[1:]
    else:
        host, _, portpart = hostport.partition(":")
    if not host or any(c in host for c in " <>\""):
        raise SipParseError(f"bad host in URI: {text[:80]!r}")
    port = None
    if portpart:
        if not is_digits(portpart) or len(portpart) > 5 or not 0 < int(portpart) < 65536:
            raise SipParseError(f"bad port in URI: {text[:80]!r}")
        port = int(portpart)
    return SipUri(scheme, user, password, host, port, parse_params(params), uri_headers)


@dataclass
class NameAddr:
    display: str
    uri: str
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"


def parse_name_addr(value: str) -> NameAddr:
    value = value.strip()
    if "<" in value:
        lt = value.index("<")
        gt = value.find(">", lt)
        if gt < 0:
            raise SipParseError("unterminated <")
        display = value[:lt].strip()
        if len(display) >= 2 and display[0] == '"' and display[-1] == '"':
            display = display[1:-1].replace('\\"', '"')
        return NameAddr(display, value[lt + 1:gt].strip(), parse_params(value[gt + 1:]))
    # addr-spec form: parameters after the URI belong to the header, not the URI.
    uri, _, params = value.partition(";")
    if not uri.strip():
        raise SipParseError("empty address")
    return NameAddr("", uri.strip(), parse_params(params))


@dataclass
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        return f"SIP/2.0/{self.transport} {host}{port}{format_params(self.params)}"


def parse_via(value: str) -> Via:
    proto, _, rest = value.strip().partition(" ")
    pieces = proto.split("/")
    if len(pieces) != 3 or pieces[0].upper() != "SIP":
        raise SipParseError("bad Via protocol")
    sent_by, _, params = rest.strip().partition(";")
    sent_by = sent_by.strip()
    try:
        uri = parse_uri("sip:" + sent_by)
    except SipParseError as exc:
        raise SipParseError("bad Via sent-by") from exc
    return Via(pieces[2].upper(), uri.host, uri.port, parse_params(params))


def parse_cseq(value: str | None) -> tuple[int, str]:
    if value is None:
        raise SipParseError("missing CSeq")
    num, _, method = value.strip().partition(" ")
    method = method.strip()
    if not is_digits(num) or len(num) > 10 or not _TOKEN.match(method):
        raise SipParseError("bad CSeq")
    return int(num), method


@dataclass
class SipMessage:
    headers: Headers
    body: bytes = b""

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.headers.get("CSeq"))

    @property
    def from_(self) -> NameAddr:
        return parse_name_addr(self.headers.get("From") or "")

    @property
    def to(self) -> NameAddr:
        return parse_name_addr(self.headers.get("To") or "")

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        return parse_via(self.headers.get("Via") or "")

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def to_bytes(self) -> bytes:
        lines = self._head_lines()  # type: ignore[attr-defined]  # Request and Response define it
        for name, value in self.headers.items():
            if name != "Content-Length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass
class Request(SipMessage):
    method: str = ""
    uri: str = ""

    def _head_lines(self) -> list[str]:
        return [f"{self.method} {self.uri} {SIP_VERSION}"]


@dataclass
class Response(SipMessage):
    status: int = 0
    reason: str = ""

    def _head_lines(self) -> list[str]:
        return [f"{SIP_VERSION} {self.status} {self.reason}"]


_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")


def parse(data: bytes) -> Request | Response:
    """Parse one datagram. Raises SipParseError for anything malformed."""
    if not isinstance(data, (bytes, bytearray)):
        raise SipParseError("not bytes")
    data = bytes(data).lstrip(b"\r\n")  # keep-alive CRLFs before a message are allowed
    sep = data.find(b"\r\n\r\n")
    if sep >= 0:
        head, body = data[:sep], data[sep + 4:]
    else:
        sep = data.find(b"\n\n")
        if sep < 0:
            raise SipParseError("no end of headers")
        head, body = data[:sep], data[sep + 2:]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("headers are not UTF-8") from exc
    raw_lines = re.split(r"\r?\n", text)
    if not raw_lines or not raw_lines[0].strip():
        raise SipParseError("empty start line")
    start = raw_lines[0]
    lines: list[str] = []
    for line in raw_lines[1:]:
        if line[:1] in (" ", "\t"):
            if not lines:
                raise SipParseError("continuation line without a header")
            lines[-1] += " " + line.strip()
        elif line:
            lines.append(line)
    headers = Headers()
    for line in lines:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN.match(name):
            raise SipParseError(f"bad header line: {line[:60]!r}")
        value = value.strip()
        if name.lower() in _LIST_HEADERS or canonical_name(name).lower() in _LIST_HEADERS:
            if value == "*":
                headers.add(name, value)
            else:
                for part in split_outside(value, ","):
                    if part.strip():
                        headers.add(name, part.strip())
        else:
            headers.add(name, value)
    parts = start.split(" ", 2)
    if start.startswith("SIP/"):
        return _response(parts, start, headers, body)
    if len(parts) != 3 or parts[2] != SIP_VERSION or not _TOKEN.match(parts[0]):
        raise SipParseError(f"bad request line: {start[:60]!r}")
    request = Request(headers, b"", parts[0].upper(), parts[1])
    _check_response_headers(headers)  # from here on, a 400 can be addressed
    try:
        if parts[1].lower().startswith(("sip:", "sips:")):
            parse_uri(parts[1])
        request.body = _body(headers, body)
        if parse_cseq(headers.get("CSeq"))[1] != request.method:
            raise SipParseError("CSeq method does not match the request")
    except SipParseError as exc:
        raise SipParseError(str(exc), request) from exc
    return request


def _response(parts: list[str], start: str, headers: Headers, body: bytes) -> Response:
    if len(parts) < 2 or parts[0] != SIP_VERSION or not is_digits(parts[1]) or len(parts[1]) != 3:
        raise SipParseError(f"bad status line: {start[:60]!r}")
    status = int(parts[1])
    if not 100 <= status <= 699:
        raise SipParseError("status code out of range")
    _check_response_headers(headers)
    return Response(headers, _body(headers, body), status, parts[2] if len(parts) > 2 else "")


def _check_response_headers(headers: Headers) -> None:
    """The headers the transaction layer and dialogs read (and a response copies) are present and sound, so
    later access cannot fail."""
    for name in _REQUIRED:
        if headers.get(name) is None:
            raise SipParseError(f"missing {name}")
    parse_cseq(headers.get("CSeq"))
    for via in headers.get_all("Via"):
        parse_via(via)
    parse_name_addr(headers.get("From") or "")
    parse_name_addr(headers.get("To") or "")


def _body(headers: Headers, body: bytes) -> bytes:
    """The body as Content-Length bounds it (the rest of the datagram is not body)."""
    length = headers.get("Content-Length")
    if length is None:
        return body
    if not is_digits(length) or len(length) > 9:
        raise SipParseError("bad Content-Length")
    n = int(length)
    if n > len(body):
        raise SipParseError("body shorter than Content-Length")
    return body[:n]
