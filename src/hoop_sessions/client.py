"""The hoop API client: userinfo preflight, list one window page, get one session.

Retries live here and nowhere else. Transient failures (429, 5xx, dropped connections, truncated or
unreadable bodies, timeouts) are retried with exponential backoff and jitter, honouring
``Retry-After``, bounded in attempts and in total time (tenacity). Everything else is raised at
once as an ``ApiError`` naming the status, the path and hoop's message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from hoop_sessions.config import Settings
from hoop_sessions.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    RetriesExhaustedError,
    TransientApiError,
    UnreadableBodyError,
)
from hoop_sessions.transport import Http, Transport, TransportFailure
from hoop_sessions.windows import format_bound

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
PERMANENT = {401: AuthenticationError, 403: ForbiddenError, 404: NotFoundError, 422: InvalidRequestError}
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
    requests: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)


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
        self.concurrency = settings.concurrency
        self.totals = _Totals()
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

    async def __aenter__(self) -> HoopClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def userinfo(self) -> dict[str, Any]:
        body = await self._get("/api/userinfo", {}, RequestStats())
        info = _parse_json(body, "/api/userinfo")
        if not isinstance(info, dict):
            raise ApiError(200, "/api/userinfo", "expected a JSON object")
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
    ) -> ListPage:
        params = {
            "start_date": format_bound(start),
            "end_date": format_bound(end),
            "limit": str(limit),
            "offset": str(offset),
            "count": count,
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
            first_failure = exc
            if self._settings.retry_attempts <= 1:
                raise RetriesExhaustedError(
                    f"GET {path} failed ({exc.reason}) and retries are off (HOOP_RETRY_ATTEMPTS=1)"
                ) from None
        # Most requests succeed at once: the retry machinery is built only after a failure.
        settings = self._settings
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientApiError),
            stop=stop_after_attempt(settings.retry_attempts - 1) | stop_after_delay(settings.retry_max_seconds),
            wait=_wait_retry_after_or_backoff,
            reraise=True,
            before_sleep=_log_retry,
        )
        log.info("retrying GET %s: %s", path, first_failure.reason)
        await asyncio.sleep(_first_wait(first_failure))
        try:
            async for attempt in retrying:
                with attempt:
                    stats.retries += 1
                    stats.requests += 1
                    self.totals.retries += 1
                    self.totals.requests += 1
                    return await self._once(path, params, validate_json)
        except TransientApiError as exc:
            error = UnreadableBodyError if exc.reason.startswith("unreadable JSON") else RetriesExhaustedError
            raise error(
                f"GET {path} kept failing after {settings.retry_attempts} attempts "
                f"(last: {exc.reason}); the gateway or a proxy in front of it is unhealthy"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, path: str, params: dict[str, str], validate_json: bool) -> bytes:
        try:
            answer = await self._http.get(path, params)
        except TransportFailure as exc:
            if exc.certificate:
                raise ConfigError(
                    f"GET {path}: the TLS certificate of {self.base_url} could not be verified ({exc.reason}). If the "
                    "gateway uses a private CA, set HOOP_CA_BUNDLE to its certificate bundle"
                ) from None
            raise TransientApiError(path, exc.reason) from None
        status, body = answer.status, answer.body
        if status in TRANSIENT_STATUSES:
            raise TransientApiError(
                path, f"HTTP {status} {_message(body)}", _retry_after(answer.headers.get("retry-after"))
            )
        if status != 200:
            raise PERMANENT.get(status, ApiError)(status, path, _message(body))
        if validate_json:
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                # A body cut short by a proxy parses as invalid JSON: read it again.
                raise TransientApiError(path, f"unreadable JSON body ({len(body)} bytes): {exc}") from None
        elif not _ends_document(body):
            # Session bodies are parsed later, once, by the build step (a full parse here would
            # hold a second copy of a 150 MB stream). A body cut short without the connection
            # noticing ends mid-document: read it again.
            raise TransientApiError(path, f"unreadable JSON body ({len(body)} bytes): it ends mid-document")
        return body


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
        raise ConfigError(f"HOOP_CA_BUNDLE {ca_bundle!r} cannot be read as a CA bundle: {exc}") from None


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
    backoff = float(_backoff(state))
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, TransientApiError) and exc.retry_after is not None:
        return max(exc.retry_after, backoff * 0.25)
    return backoff


def _first_wait(exc: TransientApiError) -> float:
    """The pause before the first retry: the server's Retry-After, else a short jittered one."""
    backoff = 0.2 + random.uniform(0, 0.5)  # noqa: S311 (jitter, not a secret)
    return max(exc.retry_after, backoff * 0.25) if exc.retry_after is not None else backoff


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.info("retrying after attempt %d: %s", state.attempt_number, exc)
