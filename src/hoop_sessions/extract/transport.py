"""HTTP for the hoop client: a fixed set of keep-alive connections, one request on each at a time.

The client sends thousands of small GETs to one origin with a fixed number in flight. A general
connection pool (httpx's) scans all its connections and checks each socket for every request it
places, and parses every URL from text; that cost more CPU per session get than anything else
in a sync (the figures are in docs/performance.md). This module gives each request slot its
own connection (httpcore's HTTP/1.1 connection, reopened when the server closes it or it idles
out) and builds request targets from parts.

Every request also has a deadline: the connect and read timeouts bound each wait, and the whole
answer must arrive within ``connect timeout + timeout`` plus one second for every
``MIN_BODY_RATE`` bytes received, so a body that trickles in a byte at a time cannot hold a
sync for as long as the server likes.

Bodies larger than ``BODY_ALLOWANCE`` are received one at a time (``LARGE_BODIES``): the
others stop reading at that size until the slot is free, so the memory of bodies being received
is bounded by the connections times the allowance plus one large body, not by the connections
times the largest body. The wait does not count against the deadline.

When more requests wait than there are connections, the one with the lowest ``request_priority``
(a context variable; a sync sets it to the day a request is for, and a split list window adds its
depth) goes first, then the longest waiting: a day read ahead takes only the connections the
earlier days leave idle.

Proxies come from the usual environment variables (``HTTPS_PROXY``, ``HTTP_PROXY``,
``ALL_PROXY``, ``NO_PROXY``); loopback addresses never go through one.

A failure is reported as a ``TransportFailure`` whose ``kind`` says what happened (refused,
unresolved, TLS to a plain-HTTP port, untrusted certificate, timeout, ...) and whose text is
written here from that kind and the address dialled. The text of the underlying exception is
never used: h11 quotes an illegal header value in its error, and that header can be the token.
"""

from __future__ import annotations

import asyncio
import errno
import heapq
import io
import itertools
import re
import socket
import ssl
import unicodedata
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, unquote, urlencode, urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment  # type: ignore[attr-defined]

import certifi
import httpcore

from hoop_sessions.config import LOOPBACK_HOSTS
from hoop_sessions.errors import ConfigError

MIN_BODY_RATE = 16 * 1024  # bytes per second a body must average after the first allowance
# A body is received without waiting up to this size (every ordinary session); past it, it needs
# one of LARGE_BODIES slots, so that a day of 100 MiB streams holds one of them being received,
# not one per connection (8 x 150 MB). The others wait (the gateway's writes wait with them).
BODY_ALLOWANCE = 8 * 1024 * 1024
LARGE_BODIES = 1
KEEPALIVE_EXPIRY = 30.0  # seconds an idle connection is kept; servers often close at 60 s


# Lower goes first when requests wait for a connection (tuples compare item by item, and a tuple
# before any longer one it starts); tasks inherit it from where they start.
request_priority: ContextVar[tuple[int, ...]] = ContextVar("request_priority", default=())


class Transport(Protocol):
    """What sends one request: an httpcore connection, pool or proxy (tests pass their own)."""

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # names lower-cased
    body: bytes


# What a TransportFailure can be; the client's retry policy is keyed on these.
FAILURE_KINDS = (
    "refused",  # nothing listens at the address (ECONNREFUSED)
    "unresolved",  # the host name does not resolve
    "tls-mismatch",  # https:// to a port that answers plain HTTP
    "certificate",  # the server's certificate is not trusted or not for this name
    "invalid-request",  # the request cannot be sent (an illegal header value)
    "proxy-auth",  # the proxy wants credentials (407 to CONNECT)
    "timeout",  # a connect, read or write wait, or the whole answer's deadline, ran out
    "network",  # anything else: reset, closed mid-answer, a proxy or TLS failure, a bad body
)


class TransportFailure(Exception):
    """No complete answer: the connection failed, a timeout or the deadline passed."""

    def __init__(self, reason: str, *, kind: str = "network", timed_out: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = "timeout" if timed_out else kind

    @property
    def timed_out(self) -> bool:
        return self.kind == "timeout"


class _Lane:
    """One request slot: a connection used by one request at a time, reopened when it is gone."""

    def __init__(self, open_connection: Callable[[], Transport]) -> None:
        self._open = open_connection
        self._connection: Transport | None = None
        self.broken = False  # set when a request on it failed or was cancelled half-way

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        connection = self._connection
        if connection is not None and (self.broken or _spent(connection)):
            self._connection = None
            self.broken = False
            await connection.aclose()
        if self._connection is None:
            self._connection = self._open()
        return await self._connection.handle_async_request(request)

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.aclose()
            self._connection = None


class _LanePool:
    """Idle lanes, and the requests waiting for one ordered by (priority, arrival)."""

    def __init__(self, lanes: list[_Lane]) -> None:
        self._idle = list(lanes)
        self._waiting: list[tuple[tuple[int, ...], int, asyncio.Future[_Lane]]] = []
        self._arrival = itertools.count()

    async def take(self) -> _Lane:
        if self._idle:  # then nobody waits: give() hands a lane to a waiter before idling it
            return self._idle.pop()
        handed: asyncio.Future[_Lane] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (request_priority.get(), next(self._arrival), handed))
        try:
            return await handed
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled():
                self.give(handed.result())  # handed over just as the waiter was cancelled
            else:
                handed.cancel()  # skipped by give()
            raise

    def give(self, lane: _Lane) -> None:
        while self._waiting:
            handed = heapq.heappop(self._waiting)[2]
            if not handed.done():
                handed.set_result(lane)
                return
        self._idle.append(lane)


class _BodySlots:
    """Slots for bodies larger than BODY_ALLOWANCE, handed out by (priority, arrival).

    A holder only ever waits for the network, so a slot always comes free again.
    """

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting: list[tuple[tuple[int, ...], int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()

    async def take(self) -> None:
        if self._free:
            self._free -= 1
            return
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (request_priority.get(), next(self._arrival), handed))
        try:
            await handed
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled():
                self.give()  # handed over just as the waiter was cancelled
            else:
                handed.cancel()  # skipped by give()
            raise

    def give(self) -> None:
        while self._waiting:
            handed = heapq.heappop(self._waiting)[2]
            if not handed.done():
                handed.set_result(None)
                return
        self._free += 1


def _spent(connection: Transport) -> bool:
    """A connection that cannot take the next request: closed by either side, idle too long,
    failed to connect, or left mid-exchange by a request that was cancelled."""
    if isinstance(connection, httpcore.AsyncHTTPConnection):
        return not connection.is_idle() or connection.has_expired()
    return False


class Http:
    """GET requests to one base URL over ``lanes`` connections; use ``async with``."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        lanes: int,
        timeout: float,
        connect_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        transport: Transport | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        self._scheme = parts.scheme.encode("ascii")
        try:
            self._host = (parts.hostname or "").encode("idna")
        except UnicodeError:
            raise ConfigError(f"the host name of {base_url!r} is not a valid domain name") from None
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._prefix = parts.path.rstrip("/")
        default_port = parts.port is None or parts.port == (443 if parts.scheme == "https" else 80)
        host_header = parts.hostname if default_port else f"{parts.hostname}:{parts.port}"
        if parts.hostname and ":" in parts.hostname:  # an IPv6 literal
            host_header = (
                f"[{parts.hostname}]" if default_port else f"[{parts.hostname}]:{parts.port}"
            )
        self._headers = [
            (b"Host", (host_header or "").encode("idna")),
            (b"Accept-Encoding", b"gzip"),
        ]
        self._headers += [(k.encode("latin-1"), _header_value(k, v)) for k, v in headers.items()]
        self._timeouts = {
            "connect": connect_timeout,
            "read": timeout,
            "write": timeout,
            "pool": timeout,
        }
        self._allowance = connect_timeout + timeout
        origin = httpcore.Origin(self._scheme, self._host, self._port)
        proxy = proxy_for(base_url)
        # Where a connection goes, for error messages: the proxy's address has no credentials.
        address = f"{host_header}:{self._port}" if default_port else f"{host_header}"
        self.dialled = address if proxy is None else f"the proxy {_bare(proxy)}"
        if ssl_context is None and parts.scheme == "https":
            # The Mozilla CA bundle, as httpx and requests use; a private CA goes in HOOP_CA_BUNDLE.
            ssl_context = ssl.create_default_context(cafile=certifi.where())

        def open_connection() -> Transport:
            if transport is not None:
                return transport
            if proxy is not None:
                return _proxy_pool(proxy, ssl_context)
            return httpcore.AsyncHTTPConnection(
                origin, ssl_context=ssl_context, keepalive_expiry=KEEPALIVE_EXPIRY
            )

        self._lanes = [_Lane(open_connection) for _ in range(lanes)]
        self._free = _LanePool(self._lanes)
        self._large = _BodySlots(LARGE_BODIES)

    async def __aenter__(self) -> Http:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for lane in self._lanes:
            await lane.aclose()

    def target(self, path: str, params: Mapping[str, str]) -> bytes:
        target = self._prefix + quote(path, safe="/")
        if params:
            target += "?" + urlencode(params)
        return target.encode("ascii")

    async def get(self, path: str, params: Mapping[str, str]) -> Answer:
        request = httpcore.Request(
            b"GET",
            httpcore.URL(
                scheme=self._scheme,
                host=self._host,
                port=self._port,
                target=self.target(path, params),
            ),
            headers=self._headers,
            extensions={"timeout": self._timeouts},
        )
        lane = await self._free.take()
        try:
            return await self._exchange(lane, request)
        except BaseException:
            lane.broken = True
            raise
        finally:
            self._free.give(lane)

    async def _exchange(self, lane: _Lane, request: httpcore.Request) -> Answer:
        loop = asyncio.get_running_loop()
        started = loop.time()
        received = 0
        failure: TransportFailure | None = None
        waited = 0.0  # seconds spent waiting for a large-body slot: not held against the deadline
        large = False
        try:
            async with asyncio.timeout(started + self._allowance) as deadline:
                response = await lane.handle_async_request(request)
                try:
                    headers = {
                        k.decode("latin-1").lower(): v.decode("latin-1")
                        for k, v in response.headers
                    }
                    decoder = _decoder(headers.get("content-encoding"))
                    # One buffer grown in place (realloc) and handed out as the body without a
                    # copy (BytesIO.getvalue): a 150 MB body is held once, where a list of chunks
                    # joined at the end held it twice.
                    body = io.BytesIO()
                    async for chunk in response.stream:  # type: ignore[union-attr]
                        received += len(chunk)
                        body.write(decoder.decompress(chunk) if decoder else chunk)
                        if not large and body.tell() > BODY_ALLOWANCE:
                            # hoop's API server sets no write timeout: its write waits with us.
                            # hoop: gateway/api/server.go (route.Run, a plain http.Server)
                            deadline.reschedule(None)
                            paused = loop.time()
                            await self._large.take()
                            large = True
                            waited += loop.time() - paused
                        deadline.reschedule(
                            started + self._allowance + waited + received / MIN_BODY_RATE
                        )
                    if decoder is not None:
                        body.write(decoder.flush())
                        if not decoder.eof:
                            raise TransportFailure("the gzip body ended early")
                finally:
                    if large:
                        self._large.give()
                    await response.aclose()
        except TimeoutError:
            raise TransportFailure(
                f"timed out (deadline: {received} bytes after {loop.time() - started:.1f} s, slower than "
                f"{MIN_BODY_RATE // 1024} KiB/s after the first {self._allowance:g} s)",
                timed_out=True,
            ) from None
        except (
            httpcore.TimeoutException,
            httpcore.NetworkError,
            httpcore.ProtocolError,
            httpcore.ProxyError,
            httpcore.ConnectionNotAvailable,
        ) as exc:
            failure = _failure(exc, self.dialled)
        except zlib.error as exc:
            raise TransportFailure(f"the gzip body cannot be decoded: {exc}") from None
        if failure is not None:
            # Raised outside the except clause, so that the original exception (whose text may
            # quote a header) is not kept as its __context__ for a traceback or Dagster to show.
            raise failure
        return Answer(response.status, headers, body.getvalue())


def _decoder(encoding: str | None) -> zlib._Decompress | None:
    if encoding is None or encoding.strip().lower() in ("", "identity"):
        return None
    if encoding.strip().lower() in ("gzip", "x-gzip"):
        return zlib.decompressobj(wbits=31)
    raise TransportFailure(
        f"the gateway answered with Content-Encoding {encoding!r}, which was not asked for"
    )


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url``, or None (loopback and NO_PROXY hosts)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    proxies = getproxies_environment()
    if host in LOOPBACK_HOSTS or proxy_bypass_environment(host, proxies):
        return None
    return proxies.get(parts.scheme) or proxies.get("all") or None


def _proxy_pool(proxy: str, ssl_context: ssl.SSLContext | None) -> Transport:
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    auth = (
        (unquote(parts.username or ""), unquote(parts.password or "")) if parts.username else None
    )
    bare = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return httpcore.AsyncHTTPProxy(
        proxy_url=bare,
        proxy_auth=auth,
        ssl_context=ssl_context,
        max_connections=1,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )


def _bare(proxy: str) -> str:
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return f"{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _header_value(name: str, value: str) -> bytes:
    """``value`` as header bytes; a value HTTP cannot carry is refused without quoting it."""
    bad = next((c for c in value if unicodedata.category(c) == "Cc" or ord(c) > 0xFF), None)
    if bad is not None:
        raise ConfigError(
            f"the {name} header cannot be sent: it holds U+{ord(bad):04X}, which HTTP does not "
            "allow in a header (the value is not shown: it may be the token)"
        )
    return value.encode("latin-1")


# OpenSSL's reasons for a handshake answered with something that is not TLS: a plain-HTTP server
# answering the ClientHello with "HTTP/1.1 400 Bad Request" (Go's net/http does so at once, and
# hoop serves its API with it: hoop: gateway/api/server.go, StartAPI). OpenSSL 3.2 and later say
# RECORD_LAYER_FAILURE where earlier versions say WRONG_VERSION_NUMBER.
_NOT_TLS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL"}
)
_WAITING_FOR = {
    httpcore.ConnectTimeout: "connecting to",
    httpcore.ReadTimeout: "waiting for the answer from",
    httpcore.WriteTimeout: "sending the request to",
    httpcore.PoolTimeout: "waiting for a free connection to",
}


def _failure(exc: BaseException, where: str) -> TransportFailure:
    """A TransportFailure for an httpcore exception, in words of this module (never ``str(exc)``)."""
    if isinstance(exc, httpcore.TimeoutException):
        return TransportFailure(
            f"timed out {_WAITING_FOR.get(type(exc), 'talking to')} {where}", kind="timeout"
        )
    if isinstance(exc, httpcore.LocalProtocolError):
        return TransportFailure(
            "the request could not be sent: a header value is not valid HTTP (not shown: it may be "
            "the token)",
            kind="invalid-request",
        )
    causes = list(_causes(exc))
    certificate = next((c for c in causes if isinstance(c, ssl.SSLCertVerificationError)), None)
    if certificate is not None:
        return TransportFailure(
            f"the TLS certificate of {where} is not trusted ({certificate.reason}: "
            f"{certificate.verify_message})",
            kind="certificate",
        )
    tls = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
    if tls is not None and _not_tls(tls):
        return TransportFailure(
            f"the TLS handshake with {where} got an answer that is not TLS ({tls.reason or 'RECORD_LAYER_FAILURE'})",
            kind="tls-mismatch",
        )
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return TransportFailure(f"connection refused by {where}", kind="refused")
    unresolved = next((c for c in causes if isinstance(c, socket.gaierror)), None)
    if unresolved is not None:
        temporary = unresolved.errno == socket.EAI_AGAIN
        return TransportFailure(
            f"{where.rsplit(':', 1)[0]} could not be resolved"
            + (" (DNS: a temporary failure)" if temporary else " (DNS: no such name)"),
            kind="unresolved",
        )
    code = next(
        (errno.errorcode.get(c.errno, "") for c in causes if isinstance(c, OSError) and c.errno), ""
    )
    detail = f" ({code})" if code else ""
    if tls is not None:
        return TransportFailure(
            f"connection failed: TLS with {where} broke ({tls.reason or type(tls).__name__})"
        )
    if isinstance(exc, httpcore.ProxyError):
        # httpcore's text is the proxy's status line: only its status number is taken.
        status = re.match(r"\d{3}\b", str(exc))
        answered = f" (it answered {status.group()})" if status else ""
        return TransportFailure(
            f"connection failed: {where} did not open a tunnel to the gateway{answered}",
            kind="proxy-auth" if status and status.group() == "407" else "network",
        )
    if isinstance(exc, httpcore.ConnectError):
        return TransportFailure(f"connection failed: could not connect to {where}{detail}")
    if isinstance(exc, httpcore.RemoteProtocolError):
        return TransportFailure(
            f"connection failed: {where} closed it before a complete answer, or broke HTTP"
        )
    if isinstance(exc, httpcore.WriteError):
        return TransportFailure(f"connection failed while sending the request to {where}{detail}")
    if isinstance(exc, httpcore.ReadError):
        return TransportFailure(f"connection failed while reading the answer from {where}{detail}")
    return TransportFailure(f"connection failed: {where} ({type(exc).__name__})")


def _not_tls(error: ssl.SSLError) -> bool:
    # Some OpenSSL versions give no reason code for it, only the text (an OpenSSL text: it cannot
    # hold anything of the request).
    text = str(error).lower()
    return (
        error.reason in _NOT_TLS or "record layer failure" in text or "wrong version number" in text
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the members of exception groups among them."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(c for c in (current.__cause__, current.__context__) if c is not None)
