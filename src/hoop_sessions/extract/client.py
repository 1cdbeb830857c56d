"""The hoop API client: userinfo preflight, list one window page, get one session.

Retries live here and nowhere else, and so does the sorting of failures (``status_verdict`` and
``RETRY_POLICY``). Transient failures (429, 5xx, dropped connections, truncated or unreadable
bodies, timeouts) are retried with exponential backoff and jitter, honouring ``Retry-After``,
bounded in attempts and in total time (tenacity). A refused connection or a name that does not
resolve is retried a few times only, with short waits, then reported as such. A configuration
error (TLS to a plain-HTTP port, an untrusted certificate, a header HTTP cannot carry) is not
retried at all. Everything else is raised at once as an ``ApiError`` naming the status, the path
and hoop's message. No message quotes a header, and the token is blotted out of any text the
gateway sent back.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from hoop_sessions.config import Settings
from hoop_sessions.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    RetriesExhaustedError,
    TlsSetupError,
    TransientApiError,
    UnreachableError,
    UnreadableBodyError,
)
from hoop_sessions.extract.transport import Http, Transport, TransportFailure
from hoop_sessions.extract.windows import format_bound

log = logging.getLogger(__name__)

# The one place HTTP statuses are sorted. hoop itself answers 401, 403, 404, 422 and 500
# (HOOP_API.md); 429 and the other 5xx come from what stands in front of it: proxies' 502 and 504,
# Cloudflare's 520-524 and 530. 501 and 505 say this request can never work there.
RETRIED_STATUSES = frozenset({408, 425, 429}) | (frozenset(range(500, 600)) - {501, 505})
# Answers about one record: a session get that gets them records the session as unreadable.
ANSWER_STATUSES = {403: ForbiddenError, 404: NotFoundError}
# Never retried: the same request would be refused the same way.
REFUSED_STATUSES = {401: AuthenticationError, 422: InvalidRequestError}

# Failures of the connection itself (transport.FAILURE_KINDS) that get a retry policy of their
# own: (attempts at most, the first wait in seconds, doubled after each attempt). A gateway that
# restarts listens again within a second or two and a DNS hiccup passes as fast; a port where
# nothing listens, or a name that does not exist, stays so, and a sync should say so at once.
# Other kinds (timeouts, resets, statuses) get HOOP_RETRY_ATTEMPTS and the exponential backoff.
RETRY_POLICY: dict[str, tuple[int, float]] = {"refused": (3, 0.5), "unresolved": (3, 1.0)}
# Not retried at all: raised at once with what to change.
CONFIG_FAILURES = frozenset({"tls-mismatch", "certificate", "invalid-request", "proxy-auth"})
PROXY_CREDENTIALS = (
    "The proxy wants credentials: give them in its URL (http://user:password@host:port)"
)
USERINFO = "/api/userinfo"
GET_PARAMS = {"expand": "event_stream,session_input"}
PAGE_LIMIT = 100


@dataclass
class RequestStats:
    """Counts of one unit of work (a window, a day): requests sent and how many were retries."""

    requests: int = 0
    retries: int = 0
    pages: int = 0

    def add(self, other: RequestStats) -> None:
        self.requests += other.requests
        self.retries += other.retries
        self.pages += other.pages


@dataclass(frozen=True)
class ListPage:
    data: list[dict[str, Any]]
    has_next_page: bool
    total: int | None
    total_is_capped: bool


@dataclass
class _Totals:
    """Requests sent by this client, retries included, over every day it has read."""

    requests: int = 0


class HoopClient:
    """Async client over one pooled keep-alive connection set. Use as ``async with``."""

    def __init__(self, settings: Settings, *, transport: Transport | None = None):
        base_url, token = settings.require_api()
        self.base_url = base_url
        header = (
            {"Authorization": f"Bearer {token.get()}"}
            if settings.auth_header == "bearer"
            else {"Api-Key": token.get()}
        )
        self._settings = settings
        self._token = token
        self.concurrency = settings.concurrency
        self.totals = _Totals()
        self._date_header: str | None = None
        # One connection per request in flight, HOOP_CONCURRENCY in all: lists and gets of every
        # day being read share them, the earliest day first (transport.request_priority).
        self._http = Http(
            base_url,
            {**header, "Accept": "application/json", "User-Agent": "hoop-sessions"},
            lanes=settings.concurrency,
            timeout=settings.timeout_seconds,
            connect_timeout=min(10.0, settings.timeout_seconds),
            ssl_context=_tls_context(settings.ca_bundle),
            transport=transport,
        )

    def gateway_now(self) -> datetime | None:
        """The gateway's clock as its last answer's Date header gave it (None without one)."""
        if not self._date_header:
            return None
        try:
            moment = parsedate_to_datetime(self._date_header)
        except (TypeError, ValueError):
            return None
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)

    async def __aenter__(self) -> HoopClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def userinfo(self) -> dict[str, Any]:
        body = await self._get(USERINFO, {}, RequestStats())
        info = _parse_json(body, USERINFO)
        if not isinstance(info, dict):
            raise ApiError(200, USERINFO, "expected a JSON object")
        return info

    async def list_page(
        self,
        *,
        start: datetime,
        end: datetime,
        offset: int,
        stats: RequestStats,
        count: str = "none",
        limit: int = PAGE_LIMIT,
        filters: Mapping[str, str] | None = None,
    ) -> ListPage:
        """One page of the window; ``filters`` adds list filters such as ``review.status``
        (an empty value is a filter too: hoop reads ``review.status=`` as "no review")."""
        params = {
            "start_date": format_bound(start),
            "end_date": format_bound(end),
            "limit": str(limit),
            "offset": str(offset),
            "count": count,
            **(filters or {}),
        }
        path = "/api/sessions"
        doc = await self._get_json(path, params, stats)
        stats.pages += 1
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            raise ApiError(200, path, "list response has no 'data' list")
        total = doc.get("total")
        more = doc.get("has_next_page")
        return ListPage(
            data=data,
            # A gateway too old to say has_next_page: a full page may have a successor.
            has_next_page=more if isinstance(more, bool) else len(data) >= limit,
            total=total if isinstance(total, int) and not isinstance(total, bool) else None,
            total_is_capped=doc.get("total_is_capped") is True,
        )

    async def get_session(self, session_id: str, stats: RequestStats) -> bytes:
        """The raw body of GET /api/sessions/{id}?expand=event_stream,session_input, checked to be JSON."""
        path = f"/api/sessions/{session_id}"
        return await self._get(path, GET_PARAMS, stats, validate_json=False)

    async def _get_json(self, path: str, params: dict[str, str], stats: RequestStats) -> Any:
        body = await self._get(path, params, stats, validate_json=True)
        return orjson.loads(body)

    async def _get(
        self,
        path: str,
        params: dict[str, str],
        stats: RequestStats,
        *,
        validate_json: bool = False,
    ) -> bytes:
        stats.requests += 1
        self.totals.requests += 1
        try:
            return await self._once(path, params, validate_json)
        except TransientApiError as exc:
            failed: TransientApiError | None = exc
            if self._settings.retry_attempts <= 1 and exc.kind in RETRY_POLICY:
                raise self._exhausted(path, exc, 1) from None
            if self._settings.retry_attempts <= 1:
                raise RetriesExhaustedError(
                    f"GET {path} failed ({exc.reason}) and retries are off (HOOP_RETRY_ATTEMPTS=1)"
                ) from None
        # Most requests succeed at once: the retry machinery is built only after a failure, and
        # that failure is its first attempt, so one policy (tenacity) makes every wait and stop.
        settings = self._settings
        attempts = 1
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientApiError),
            stop=_StopAfter(settings.retry_attempts) | stop_after_delay(settings.retry_max_seconds),
            wait=_wait_retry_after_or_backoff,
            reraise=True,
            before_sleep=functools.partial(_log_retry, path),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if failed is not None:  # the attempt made above, before any machinery
                        failure, failed = failed, None
                        raise failure
                    stats.retries += 1
                    stats.requests += 1
                    self.totals.requests += 1
                    attempts += 1
                    return await self._once(path, params, validate_json)
        except TransientApiError as exc:
            raise self._exhausted(path, exc, attempts) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _exhausted(self, path: str, exc: TransientApiError, attempts: int) -> RetriesExhaustedError:
        """The error for a request that failed ``attempts`` times, naming the cause."""
        if exc.kind == "refused":
            return UnreachableError(
                f"GET {path}: {exc.reason} ({attempts} attempts): nothing accepts connections there. "
                f"Check the host and port of HOOP_API_URL ({self.base_url}) and that the gateway, "
                "or the proxy in front of it, is running"
            )
        if exc.kind == "unresolved":
            return UnreachableError(
                f"GET {path}: {exc.reason} ({attempts} attempts). Check the host name in HOOP_API_URL "
                f"({self.base_url}), and the DNS (or VPN) of this machine"
            )
        error = (
            UnreadableBodyError
            if exc.reason.startswith("unreadable JSON")
            else RetriesExhaustedError
        )
        return error(
            f"GET {path} kept failing after {attempts} attempts "
            f"(last: {exc.reason}); the gateway or a proxy in front of it is unhealthy"
        )

    async def _once(self, path: str, params: dict[str, str], validate_json: bool) -> bytes:
        try:
            answer = await self._http.get(path, params)
        except TransportFailure as exc:
            if exc.kind in CONFIG_FAILURES:
                raise self._misconfigured(path, exc) from None
            raise TransientApiError(path, exc.reason, kind=exc.kind) from None
        status, body = answer.status, answer.body
        self._date_header = answer.headers.get("date") or self._date_header
        verdict = status_verdict(status)
        if verdict == "retry":
            raise TransientApiError(
                path,
                f"HTTP {status} {self._message(body)}",
                _retry_after(answer.headers.get("retry-after")),
                kind="status",
            )
        if verdict != "ok":
            error = ANSWER_STATUSES.get(status) or REFUSED_STATUSES.get(status) or ApiError
            message = self._message(body)
            raise error(status, path, message, hint=self._hint(status, path, message))
        if path == USERINFO and _is_html(answer.headers, body):
            raise ApiError(200, path, "an HTML page, not JSON", hint=self._not_the_api())
        if validate_json:
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                # A body cut short by a proxy parses as invalid JSON: read it again.
                raise TransientApiError(
                    path, f"unreadable JSON body ({len(body)} bytes): {exc}"
                ) from None
        elif not _ends_document(body):
            # Session bodies are parsed later, once, by the build step (a full parse here would
            # hold a second copy of a 150 MB stream). A body cut short without the connection
            # noticing ends mid-document: read it again.
            raise TransientApiError(
                path, f"unreadable JSON body ({len(body)} bytes): it ends mid-document"
            )
        return body

    def _misconfigured(self, path: str, failure: TransportFailure) -> ConfigError:
        if failure.kind == "tls-mismatch":
            return TlsSetupError(
                f"GET {path}: {failure.reason}: HOOP_API_URL ({self.base_url}) says https but that port "
                "answers plain HTTP. Use http:// if the gateway serves no TLS (to a host that is not "
                "loopback also set HOOP_ALLOW_HTTP=1), or the address where TLS is served"
            )
        if failure.kind == "certificate":
            return TlsSetupError(
                f"GET {path}: {failure.reason}. If the gateway uses a private CA, set HOOP_CA_BUNDLE to its "
                f"certificate bundle; if the certificate is for another name, use that name in HOOP_API_URL"
            )
        if failure.kind == "proxy-auth":
            return ConfigError(f"GET {path}: {failure.reason}. {PROXY_CREDENTIALS}")
        return ConfigError(
            f"GET {path}: {failure.reason}. Check HOOP_API_TOKEN and HOOP_API_AUTH_HEADER"
        )

    def _hint(self, status: int, path: str, message: str) -> str | None:
        """What to do about a refused request, where the class's own hint is not enough."""
        if status == 404 and not path.startswith("/api/sessions/"):
            return self._not_the_api()
        if status == 400 and "HTTPS server" in message:
            # Go's net/http answers so to plain HTTP on its TLS port (hoop: gateway/api/server.go).
            return (
                f"HOOP_API_URL ({self.base_url}) says http but that port serves TLS: use https://"
            )
        if status == 407:
            return PROXY_CREDENTIALS
        return None

    def _not_the_api(self) -> str:
        if urlsplit(self.base_url).path.rstrip("/").endswith("/api"):
            return (
                f"HOOP_API_URL ({self.base_url}) ends in /api: give the gateway's base URL without "
                "it, the client adds /api/..."
            )
        # hoop serves its API under <base path>/api and its web app (or a 404) elsewhere
        # (hoop: gateway/api/server.go, NoRoute).
        return (
            f"HOOP_API_URL ({self.base_url}) does not lead to hoop's API: give the gateway's base URL, "
            "with the path it is served under if any (the address of its web app); the client "
            "adds /api/..."
        )

    def _message(self, body: bytes) -> str:
        """The gateway's message, with the token blotted out should a proxy echo the request (in
        the whole body, before it is cut short, so that no part of it is left at the cut)."""
        token = self._token.get().encode("latin-1")
        return _message(body.replace(token, b"********") if token in body else body)


def status_verdict(status: int) -> str:
    """How to take an HTTP status: ``ok``, ``retry`` (429, 5xx, Cloudflare's 520-530 among
    them), ``answer`` (403, 404: about one record) or ``refused`` (401, 422 and anything else)."""
    if status == 200:
        return "ok"
    if status in RETRIED_STATUSES:
        return "retry"
    if status in ANSWER_STATUSES:
        return "answer"
    return "refused"


def _is_html(headers: Mapping[str, str], body: bytes) -> bool:
    return "html" in headers.get("content-type", "").lower() or body.lstrip()[:1] == b"<"


class _StopAfter(stop_base):
    """Stop when the failure's own attempt limit (RETRY_POLICY) or the budget is reached."""

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        limit = self.budget
        if isinstance(exc, TransientApiError) and exc.kind in RETRY_POLICY:
            limit = min(limit, RETRY_POLICY[exc.kind][0])
        return retry_state.attempt_number >= limit


def _ends_document(body: bytes) -> bool:
    """True when ``body`` ends with ``}`` or ``]`` before any trailing whitespace. Looks at the
    end only: ``body.rstrip()`` would copy a 150 MB body to drop hoop's final newline."""
    end = len(body)
    while end and body[end - 1] in b" \t\r\n\x0b\x0c":
        end -= 1
    return body[end - 1 : end] in (b"}", b"]")


def _tls_context(ca_bundle: str | None) -> ssl.SSLContext | None:
    """Verification always on; with HOOP_CA_BUNDLE, against that bundle (None: the system's)."""
    if not ca_bundle:
        return None
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"HOOP_CA_BUNDLE {ca_bundle!r} cannot be read as a CA bundle: {exc}"
        ) from None


def _parse_json(body: bytes, path: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(200, path, f"invalid JSON: {exc}") from None


def _message(body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return str(doc["message"])
    return body[:200].decode("utf-8", "replace").strip()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 120.0))
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


_backoff = wait_exponential_jitter(multiplier=0.2, max=20.0, jitter=0.5)


def _wait_retry_after_or_backoff(state: RetryCallState) -> float:
    """The wait after attempt n: the failure kind's own doubling (RETRY_POLICY), else the server's
    Retry-After, else an exponential backoff with jitter (0.2 s doubling, plus up to 0.5 s)."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, TransientApiError) and exc.kind in RETRY_POLICY:
        return RETRY_POLICY[exc.kind][1] * 2.0 ** (state.attempt_number - 1)
    backoff = float(_backoff(state))
    if isinstance(exc, TransientApiError) and exc.retry_after is not None:
        return max(exc.retry_after, backoff * 0.25)
    return backoff


def _log_retry(path: str, state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.info("retrying after attempt %d of GET %s: %s", state.attempt_number, path, exc)
