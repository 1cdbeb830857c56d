"""Extract one closed UTC day: list every session of the day, get each one, keep the raw bodies.

Listing asks for ``[D 00:00:00Z, D+1 00:00:00Z]`` and keeps rows with ``D <= start_date < D+1``,
deduplicated by id. A window holding more rows than offset paging can reach (the gateway refuses
offsets above 10,000) is split in two, recursively, down to one second; each part is paged until
``has_next_page`` is false or a page comes back empty. A single second still too full is split by
list filters (review status, then connection type), checked against the second's exact count;
what no filter reaches is recorded as a gap of the day instead of failing it. Gets run concurrently with a bounded limit;
their bodies are written to the day's raw file in a fixed order (start_date, id), so a rerun of an
unchanged day writes the same file.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from hoop_sessions.errors import (
    AuthenticationError,
    ConfigError,
    ForbiddenError,
    HoopSessionsError,
    NotFoundError,
    PagingError,
    RawDataError,
    RetriesExhaustedError,
    UnreadableBodyError,
)
from hoop_sessions.extract.client import PAGE_LIMIT, HoopClient, ListPage, RequestStats
from hoop_sessions.extract.protect import protect_output, stricter
from hoop_sessions.extract.raw import RawDay, RawDayWriter, RawHeader, RawWindow, header_stamp
from hoop_sessions.extract.transport import request_priority
from hoop_sessions.extract.values import (
    UUID_RE,
    Principal,
    RecordRejected,
    parse_time,
    truncate_payload,
)
from hoop_sessions.extract.windows import Window, day_bounds, day_window
from hoop_sessions.progress import NullProgress, Progress

log = logging.getLogger(__name__)

OFFSET_CAP = 10_000
READABLE_ROWS = OFFSET_CAP + PAGE_LIMIT
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class WindowResult:
    window: Window
    stats: RequestStats = field(default_factory=RequestStats)
    session_ids: list[str] = field(default_factory=list, repr=False)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None

    def to_json(self) -> RawWindow:
        return {
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "pages": self.stats.pages,
            "requests": self.stats.requests,
            "retries": self.stats.retries,
            "started_at": self.started_at.isoformat(),
            "finished_at": (self.finished_at or datetime.now(UTC)).isoformat(),
            "session_ids": self.session_ids,
        }


@dataclass(frozen=True)
class ExtractResult:
    day: date
    path: Path
    sessions_listed: int
    sessions_fetched: int
    rejects: int
    requests: int
    retries: int
    windows: int
    reused: int = 0
    changed: bool = True
    # False when the day was not listed again: only its sessions not final were read, by id.
    listed_again: bool = True
    # The raw file's stamp (its finished_at), the ids listed, and those read (or confirmed
    # unchanged by their list row) in this run.
    stamp: str | None = None
    listed_ids: tuple[str, ...] = ()
    read_ids: tuple[str, ...] = ()
    # Sessions that could not be read, with the cause; of them, those read before whose previous
    # body was kept (stale), and those the gateway answered 404 for (gone).
    failures: dict[str, str] = field(default_factory=dict)
    stale: frozenset[str] = frozenset()
    gone: frozenset[str] = frozenset()
    # Parts of the day no list filter could reach (see _list_crowded_second).
    gaps: tuple[dict[str, Any], ...] = ()


@dataclass
class _Listed:
    """Rows of one day gathered from every window: first window to list an id owns it."""

    day: date
    by_id: dict[str, tuple[datetime, WindowResult]] = field(default_factory=dict, repr=False)
    fingerprints: dict[str, str] = field(default_factory=dict, repr=False)
    rejects: list[dict[str, Any]] = field(default_factory=list, repr=False)
    # Parts of the day that no list filter could reach: {window_start, window_end, reason,
    # rows_unreached}. The rest of the day is read; the gap is recorded instead of failing it.
    gaps: list[dict[str, Any]] = field(default_factory=list, repr=False)
    bounds: tuple[datetime, datetime] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.bounds = day_bounds(self.day)

    def take(self, row: Any, owner: WindowResult, requested: Window) -> None:
        day_start, day_end = self.bounds
        sid = row.get("id") if isinstance(row, dict) else None
        if not isinstance(sid, str) or not UUID_RE.match(sid):
            self._reject(None, "list row has a missing or malformed id", row, owner)
            return
        sid = sid.lower()
        try:
            start = parse_time(row.get("start_date"), "start_date")
        except RecordRejected as exc:
            if sid not in self.by_id:
                self._reject(sid, f"list row: {exc.reason}", row, owner)
            return
        if start >= day_end and start <= requested.end:
            return  # exactly on D+1 00:00:00: it belongs to the next day
        if not requested.start <= start <= requested.end:
            self._reject(
                sid,
                f"list row start_date {start.isoformat()} is outside the window "
                f"{requested} that was asked for",
                row,
                None,
            )
            return
        if start < day_start or start >= day_end:
            return
        if sid not in self.by_id:
            self.by_id[sid] = (start, owner)
            self.fingerprints[sid] = fingerprint(row)
            owner.session_ids.append(sid)

    def _reject(self, sid: str | None, reason: str, row: Any, owner: WindowResult | None) -> None:
        if sid is not None and any(r["session_id"] == sid for r in self.rejects):
            return
        self.rejects.append(_reject_row(sid, "list", reason, row))
        if owner is not None and sid is not None:
            owner.session_ids.append(sid)


def fingerprint(row: dict[str, Any]) -> str:
    """A digest of a list row: when it and the stored record are unchanged, the get can be skipped.

    A list row carries every field that changes after creation except the stream, the input and
    the AI analysis (status, end_date, exit_code, metrics, event_size, metadata, the review and its
    groups), so a session already final whose row is unchanged is not read again.
    """
    return hashlib.blake2b(
        orjson.dumps(row, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).hexdigest()


def _failure_cause(exc: HoopSessionsError) -> str:
    """Why a listed session could not be read, for the ledger and ``rejects``."""
    if isinstance(exc, NotFoundError):
        return f"listed but not found when read (404 {exc.message!r}); deleted after listing?"
    if isinstance(exc, ForbiddenError):
        return f"listed but the token may not read it (403 {exc.message!r})"
    if isinstance(exc, UnreadableBodyError):
        return f"the gateway kept answering with a body that is not JSON: {exc}"
    return f"could not be read: {exc}"


def _reject_row(sid: str | None, stage: str, reason: str, payload: Any) -> dict[str, Any]:
    return {
        "session_id": sid,
        "stage": stage,
        "reason": reason,
        "payload": truncate_payload(payload),
        "seen_at": datetime.now(UTC).isoformat(),
    }


async def list_day(client: HoopClient, day: date) -> tuple[list[WindowResult], _Listed]:
    """Every session of ``day``, with the windows that were read to find them; what no list
    filter could reach is in the returned ``_Listed.gaps``."""
    listed = _Listed(day)
    windows: list[WindowResult] = []
    await _list_window(client, day_window(day), listed, windows, carry=None)
    windows.sort(key=lambda w: w.window.start)
    return windows, listed


async def _list_window(
    client: HoopClient,
    window: Window,
    listed: _Listed,
    windows: list[WindowResult],
    carry: RequestStats | None,
    depth: int = 0,
) -> None:
    if depth:
        # Halves of halves first: a window that must be split all the way down reaches its
        # one-second end in a few dozen requests, not after every window of each size above it.
        request_priority.set((*request_priority.get()[:1], -depth))
    result = WindowResult(window)
    if carry is not None:
        result.stats.add(carry)
    first = await client.list_page(
        start=window.start, end=window.end, offset=0, count="capped", stats=result.stats
    )
    if _too_large(first):
        halves = window.split()
        if halves is None:
            windows.append(result)
            await _list_crowded_second(client, window, listed, result)
            result.finished_at = datetime.now(UTC)
            return
        log.info("window %s holds %s sessions: splitting", window, _describe_total(first))
        # The probe's requests are accounted to the first half.
        # A task group: when one half fails, the other is cancelled instead of listing on.
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(
                    _list_window(
                        client, halves[0], listed, windows, carry=result.stats, depth=depth + 1
                    )
                )
                group.create_task(
                    _list_window(client, halves[1], listed, windows, carry=None, depth=depth + 1)
                )
        except BaseExceptionGroup as failures:
            raise _first_leaf(failures) from None
        return
    windows.append(result)
    await _page_window(client, window, first, listed, result)
    result.finished_at = datetime.now(UTC)


# hoop: gateway/models/reviews.go (the labels of enum_reviews_status); EXPIRED is a newer
# gateway's. review.status is matched with LIKE against COALESCE(status, ''), so an empty value
# selects the sessions without a review and a value without % or _ matches exactly.
REVIEW_STATUSES = (
    "PENDING",
    "APPROVED",
    "REJECTED",
    "REVOKED",
    "PROCESSING",
    "EXECUTED",
    "UNKNOWN",
    "EXPIRED",
)
# hoop: gateway/api/openapi/types.go (database, application, custom) and common/proto/const.go (the
# types older sessions were stamped with). type is matched with LIKE against
# COALESCE(connection_type, ''): the empty value selects sessions without one.
CONNECTION_TYPES = (
    "database",
    "application",
    "custom",
    "command-line",
    "postgres",
    "mysql",
    "mssql",
    "mongodb",
    "oracledb",
    "tcp",
    "httpproxy",
    "kubernetes",
    "ssh",
    "rdp",
    "aws-ssm",
    "dynamodb",
    "cloudwatch",
    "mcp",
    "mcpproxy",
    "claude-code",
)


@dataclass(frozen=True)
class _Dimension:
    """A list filter whose values, with the empty one, may partition a window's sessions."""

    key: str
    values: tuple[str, ...]


BY_REVIEW_STATUS = _Dimension("review.status", ("", *REVIEW_STATUSES))
BY_TYPE = _Dimension("type", ("", *CONNECTION_TYPES))
# The orders tried on a second too full for offset paging: the second only when the first did
# not reach every row (a review status or a type this version does not know).
SPLIT_ORDERS = ((BY_REVIEW_STATUS, BY_TYPE), (BY_TYPE, BY_REVIEW_STATUS))


async def _list_crowded_second(
    client: HoopClient, window: Window, listed: _Listed, result: WindowResult
) -> None:
    """A one-second window holding more sessions than offset paging reaches, read by filters.

    hoop has no finer time filter, but review.status and type split a second further. A split
    is complete only if provably so: the second's exact total is asked for, and the distinct
    ids the parts returned are counted against it (parts may overlap: a LIKE value can match
    more than itself). What no order of filters reaches is recorded as a gap of the day, and
    the rest of the day is read.
    """
    # hoop: gateway/models/session.go (count=exact counts every row matching the filters)
    probe = await client.list_page(
        start=window.start, end=window.end, offset=0, count="exact", limit=1, stats=result.stats
    )
    if probe.total is None or probe.total_is_capped:
        raise PagingError(
            f"more than {READABLE_ROWS} sessions started within the one second {window} and the "
            "gateway gives no exact count: a split by list filters cannot be proven complete"
        )
    total = probe.total
    reached: set[str] = set()
    for order in SPLIT_ORDERS:
        log.info(
            "second %s holds %d sessions: listing it by %s",
            window,
            total,
            " then ".join(d.key for d in order),
        )
        await _list_parts(client, window, {}, order, listed, result, reached)
        if len(reached) >= total:
            return
        log.warning(
            "second %s: %d of its %d sessions reached by %s",
            window,
            len(reached),
            total,
            " then ".join(d.key for d in order),
        )
    unreached = total - len(reached)
    listed.gaps.append(
        {
            "window_start": window.start.isoformat(),
            "window_end": window.end.isoformat(),
            "reason": (
                f"{total} sessions started within one second, more than the {READABLE_ROWS} offset "
                "paging reaches, and no split by review.status or type reached them all (a value "
                "this version does not know, or one part still too large)"
            ),
            "rows_unreached": unreached,
        }
    )
    log.error(
        "second %s: %d of its %d sessions could not be listed; recorded as a gap of %s",
        window,
        unreached,
        total,
        listed.day,
    )


async def _list_parts(
    client: HoopClient,
    window: Window,
    filters: dict[str, str],
    dimensions: tuple[_Dimension, ...],
    listed: _Listed,
    result: WindowResult,
    reached: set[str],
) -> None:
    """Every part of ``window`` under ``filters`` split by the first dimension; a part still too
    large for offset paging is split by the next one, and what that misses of it is read as far
    as paging reaches."""
    dimension, rest = dimensions[0], dimensions[1:]

    async def part(value: str) -> None:
        narrowed = {**filters, dimension.key: value}
        first = await client.list_page(
            start=window.start,
            end=window.end,
            offset=0,
            count="exact",
            filters=narrowed,
            stats=result.stats,
        )
        if _too_large(first) and rest:
            inside: set[str] = set()
            await _list_parts(client, window, narrowed, rest, listed, result, inside)
            reached.update(inside)
            if first.total is not None and len(inside) >= first.total:
                return
        reached.update(
            await _page_window(
                client, window, first, listed, result, filters=narrowed, up_to_cap=True
            )
        )

    try:
        async with asyncio.TaskGroup() as group:
            for value in dimension.values:
                group.create_task(part(value))
    except BaseExceptionGroup as failures:
        raise _first_leaf(failures) from None


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error inside (possibly nested) exception groups: what callers expect to see."""
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _too_large(page: ListPage) -> bool:
    return page.total_is_capped or (page.total is not None and page.total > READABLE_ROWS)


def _describe_total(page: ListPage) -> str:
    return f"{page.total}+" if page.total_is_capped else str(page.total)


async def _page_window(
    client: HoopClient,
    window: Window,
    page: ListPage,
    listed: _Listed,
    result: WindowResult,
    *,
    filters: dict[str, str] | None = None,
    up_to_cap: bool = False,
) -> set[str]:
    """Page the window from its first page; returns the ids (or row keys) it returned.

    With ``up_to_cap`` a part reported larger than offset paging reaches is read as far as it
    reaches and no further (its caller counts what is missing).
    """
    offset = 0
    pages = 1
    seen: set[str] = set()
    # The gateway computes has_next_page by fetching one extra row; pre-1.144 gateways say
    # "this page was full" instead, so an empty page must also end paging. A page that adds no
    # id not seen before in this window means the server is repeating itself: stop, loudly.
    first = page
    reported = page.total if page.total is not None else READABLE_ROWS
    max_pages = reported // PAGE_LIMIT + 2
    async with aclosing(_pages_ahead(client, window, page, result.stats, filters)) as ahead:
        while True:
            new = 0
            for row in page.data:
                sid = row.get("id") if isinstance(row, dict) else None
                key = sid if isinstance(sid, str) else repr(row)[:200]
                if key not in seen:
                    seen.add(key)
                    new += 1
                listed.take(row, result, window)
            if not page.has_next_page or not page.data:
                return seen
            if new == 0:
                raise PagingError(
                    f"window {window}: the page at offset {offset} repeated rows already read while "
                    "has_next_page stayed true; the gateway's paging is broken"
                )
            if pages >= max_pages:
                raise PagingError(
                    f"window {window}: has_next_page still true after {pages} pages, more than the "
                    f"{reported} rows the gateway reported; stopping instead of paging for ever"
                )
            offset += len(page.data)
            if offset > OFFSET_CAP and up_to_cap and _too_large(first):
                return seen
            if offset > OFFSET_CAP:
                raise PagingError(
                    f"window {window}: next offset {offset} is past hoop's cap of {OFFSET_CAP}, yet the "
                    "first page did not report that many rows"
                )
            fetched = await anext(ahead, None)
            if fetched is not None and fetched[0] == offset:
                page = fetched[1]
            else:
                # Not the page that was fetched ahead (rows moved, or none left ahead): from here
                # one page at a time, as the offsets of the earlier ones say.
                await ahead.aclose()
                page = await client.list_page(
                    start=window.start,
                    end=window.end,
                    offset=offset,
                    stats=result.stats,
                    filters=filters,
                )
            pages += 1


async def _pages_ahead(
    client: HoopClient,
    window: Window,
    first: ListPage,
    stats: RequestStats,
    filters: dict[str, str] | None = None,
) -> AsyncGenerator[tuple[int, ListPage], None]:
    """The window's later pages, ``client.concurrency`` at a time, in offset order.

    The first page's total says where the later pages start: a closed window in the past does
    not change, so they can be asked for at once instead of one round trip after another (20
    pages of a 2,000-session day: 0.28 s one after another, 0.05 s eight at a time). Only when
    the first page is full and the total is known; the caller checks each page's offset.
    """
    if first.total is None or len(first.data) != PAGE_LIMIT or not first.has_next_page:
        return
    last = min(first.total, READABLE_ROWS) - 1
    offsets = range(PAGE_LIMIT, min(last, OFFSET_CAP) + 1, PAGE_LIMIT)

    async def fetch(offset: int) -> tuple[int, ListPage]:
        page = await client.list_page(
            start=window.start, end=window.end, offset=offset, stats=stats, filters=filters
        )
        return offset, page

    async with aclosing(ordered_map(offsets, fetch, limit=_queued(client.concurrency))) as pages:
        async for item in pages:
            yield item


def _queued(concurrency: int) -> int:
    """Requests of one day started at once: twice the connections, so that while the day has
    work left some of it always waits for a connection, and a freed one goes to it rather than to
    a later day read at the same time (the client holds ``concurrency`` connections in all)."""
    return 2 * concurrency


# Bytes of finished results that ordered_map holds for in-order delivery before it stops
# starting items: a few ordinary days' worth of bodies, a fraction of one huge stream.
HELD_RESULT_BYTES = 64 * 1024 * 1024


def result_bytes(result: object) -> int:
    """The bytes a result holds: a body, or the bodies in a tuple such as ``(sid, body)``."""
    if isinstance(result, bytes | bytearray):
        return len(result)
    if isinstance(result, tuple):
        return sum(len(part) for part in result if isinstance(part, bytes | bytearray))
    return 0


async def ordered_map(
    items: Iterable[T],
    fn: Callable[[T], Awaitable[R]],
    *,
    limit: int,
    ready: Callable[[T], R | None] | None = None,
    held_bytes: int = HELD_RESULT_BYTES,
    size: Callable[[R], int] = result_bytes,
) -> AsyncGenerator[R, None]:
    """``fn`` over items, at most ``limit`` at a time, results yielded in input order.

    Close it (``contextlib.aclosing``) when done: closing cancels the items still running and
    waits until they have stopped, so a failed day has nothing in flight once its caller moves on.
    An item for which ``ready`` gives a result (not None) takes that result without running ``fn``
    and without a task (a nightly run reuses most sessions of the days it re-reads).

    Results that finish before the ones ahead of them wait to be delivered. Once those hold more
    than ``held_bytes`` (by ``size``), the next items wait before they start until earlier results
    are delivered; the next result to deliver always runs. Finished results therefore hold at most
    ``held_bytes`` plus the results of the items already running (fewer than ``limit``), however
    large the bodies of a day are.
    """
    pending: deque[asyncio.Future[R]] = deque()
    semaphore = asyncio.Semaphore(limit)
    loop = asyncio.get_running_loop()
    held = 0  # bytes of the finished results not delivered yet
    delivered = 0  # index of the next result to deliver
    room = asyncio.Condition()  # notified when a result is delivered

    async def run(index: int, item: T) -> R:
        nonlocal held
        # Among requests of equal priority, the earlier items first (connections, large
        # bodies: transport.request_priority), so results tend to finish in delivery order.
        request_priority.set((*request_priority.get(), index))
        async with semaphore:
            if held > held_bytes and index != delivered:
                async with room:
                    await room.wait_for(lambda: held <= held_bytes or index == delivered)
            result = await fn(item)
        held += size(result)
        return result

    async def deliver() -> R:
        nonlocal held, delivered
        result = await pending.popleft()
        held -= size(result)
        delivered += 1
        async with room:
            room.notify_all()
        return result

    try:
        for index, item in enumerate(items):
            result = ready(item) if ready is not None else None
            if result is None:
                pending.append(asyncio.ensure_future(run(index, item)))
            else:
                done = loop.create_future()
                done.set_result(result)
                held += size(result)
                pending.append(done)
            # Bound the results held for in-order delivery to a few per worker.
            if len(pending) >= limit * 4:
                yield await deliver()
        while pending:
            yield await deliver()
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


@dataclass(frozen=True)
class PreviousDay:
    """What an earlier sync of the day left: its raw file and which of its sessions are final."""

    raw_dir: Path
    final_ids: frozenset[str]
    # True when the day's raw file is the one the warehouse holds: a run killed after replacing
    # the raw file and before loading it left a raw file that only looks "unchanged".
    raw_is_loaded: bool = True
    # False for a day older than the rolling window: its sessions that are not final are read
    # again by id, without listing the day (see _listed_before).
    relist: bool = True
    # A session's record has become final by the clock since it was built: rebuild the day.
    rebuild: bool = False


class _PreviousBodies:
    """The bodies of the day's previous raw file, read forward in the same (start_date, id) order."""

    def __init__(self, previous: PreviousDay | None, day: date) -> None:
        self.fingerprints: dict[str, str] = {}
        self.digests: dict[str, str] = {}
        self.final_ids: frozenset[str] = frozenset()
        self.ids: set[str] = set()
        # None when there is no previous raw file (or it cannot be read).
        self.header: RawHeader | None = None
        self._pairs: Any = iter(())
        if previous is None:
            return
        try:
            raw = RawDay(previous.raw_dir, day)
        except RawDataError:
            return
        self.header = raw.header
        self.fingerprints = dict(raw.header.get("fingerprints") or {})
        self.digests = dict(raw.header.get("digests") or {})
        order = list(raw.header.get("order") or [])
        self.ids = set(order)
        self.final_ids = previous.final_ids
        self._pairs = zip(order, raw.bodies(), strict=False)

    def reusable(self, sid: str, row_fingerprint: str) -> bool:
        return sid in self.final_ids and self.fingerprints.get(sid) == row_fingerprint

    def body(self, sid: str) -> bytes | None:
        """The previous body of ``sid``, skipping the ones before it; None when it had none."""
        if sid not in self.ids:
            return None
        for old_sid, body in self._pairs:
            if old_sid == sid:
                return bytes(body).rstrip(b"\r\n")
        return None


REUSE = b""
# Reads failing one after another without a success between them: the gateway, not a session.
FAILURES_IN_A_ROW = 20
# A session read before whose read failed now: its previous body is written again.
STALE = b"\x00stale"
# Bodies held back while a re-read day still looks unchanged (see extract_day); past this much
# the day is written out as it goes, as when it has changed.
HELD_BYTES = 64 * 1024 * 1024


def body_digest(body: bytes) -> str:
    """The digest of a body as the raw file keeps it (without hoop's trailing newline)."""
    return hashlib.blake2b(body.rstrip(b"\r\n"), digest_size=16).hexdigest()


async def extract_day(
    client: HoopClient,
    *,
    raw_dir: Path,
    day: date,
    concurrency: int,
    principal: Principal,
    progress: Progress | None = None,
    previous: PreviousDay | None = None,
    store_output: str = "full",
) -> ExtractResult:
    """List and get every session of ``day`` and replace the day's raw file.

    With ``previous``, a session that was final when last read and whose list row is unchanged is
    not read again: its body is copied from the previous raw file. When nothing at all changed, the
    raw file is left as it was and ``changed`` is false, so the day need not be rebuilt.
    """
    progress = progress or NullProgress()
    started = datetime.now(UTC)
    old = _PreviousBodies(previous, day)
    before = (
        _listed_before(old.header, day)
        if previous is not None and not previous.relist and previous.raw_is_loaded
        else None
    )
    if before is None:
        windows, listed = await list_day(client, day)
        order = sorted(listed.by_id, key=lambda sid: (listed.by_id[sid][0], sid))
    else:
        windows, listed, order = before
    progress.day_listed(day, len(order), listed=before is None)
    owner = {sid: listed.by_id[sid][1] for sid in order}
    rejects = list(listed.rejects)

    def reusable(sid: str) -> tuple[str, bytes | None] | None:
        return (sid, REUSE) if old.reusable(sid, listed.fingerprints[sid]) else None

    failures: dict[str, str] = {}
    in_a_row = [0]
    stale: set[str] = set()
    gone: set[str] = set()

    async def fetch(sid: str) -> tuple[str, bytes | None]:
        stats = owner[sid].stats
        try:
            body = await client.get_session(sid, stats)
            in_a_row[0] = 0
            return sid, protect_output(body, store_output) if store_output != "full" else body
        except (AuthenticationError, ConfigError):
            raise  # the run cannot go on: the token or the settings are wrong
        except HoopSessionsError as exc:
            error = exc
        cause = _failure_cause(error)
        failures[sid] = cause
        in_a_row[0] += 1
        if in_a_row[0] >= FAILURES_IN_A_ROW and len(failures) >= FAILURES_IN_A_ROW:
            # Not one bad session but the gateway failing every read: give the day up (its
            # previous content stays) instead of retrying each of its sessions in turn.
            raise RetriesExhaustedError(
                f"{in_a_row[0]} sessions in a row could not be read (last: {sid}: {cause})"
            )
        if sid in old.ids:
            # Read before: the session keeps its previous body and rows, marked stale in the
            # ledger; one bad answer never deletes audit evidence.
            stale.add(sid)
            if isinstance(error, NotFoundError):
                gone.add(sid)
            log.warning(
                "%s: session %s could not be read again, its previous copy is kept: %s",
                day,
                sid,
                cause,
            )
            return sid, STALE
        rejects.append(_reject_row(sid, "get", cause, None))
        return sid, None

    fetched: list[str] = []
    digests: dict[str, str] = {}
    reused = 0
    # Bodies copied forward from a raw file written under a mode that kept more output are
    # reduced again: a switch to a stricter HOOP_STORE_OUTPUT applies to every body written.
    reprotect = bool(
        old.header and stricter(store_output, str(old.header.get("store_output") or "full"))
    )
    changed = (
        set(order) != old.ids
        or bool(rejects)
        or bool(reprotect)
        or (previous is not None and (not previous.raw_is_loaded or previous.rebuild))
    )
    # A re-read day that may turn out unchanged (the nightly case) is not written while it looks
    # unchanged: bodies are compared with the previous file's digests, and only once something
    # differs are the bodies so far written, the reused ones copied from the previous file. An
    # unchanged day then costs no decompression or compression at all (it was about half of a
    # nightly run's CPU). A previous file without digests (older versions) is compared body by body.
    held: list[tuple[str, bytes | None]] | None = (
        [] if previous is not None and not changed and old.ids <= old.digests.keys() else None
    )
    held_bytes = 0
    with RawDayWriter(raw_dir, day) as writer:

        def write(sid: str, body: bytes | None) -> None:
            """Write ``body``, or with None the previous file's body of ``sid``."""
            if body is None:
                body = old.body(sid)
                if body is None:
                    raise RawDataError(
                        f"the previous raw file of {day} lost the body of {sid}: sync it again"
                    )
                if reprotect:
                    body = protect_output(body, store_output)
            writer.write(body)

        async with aclosing(
            ordered_map(order, fetch, limit=_queued(concurrency), ready=reusable)
        ) as results:
            async for sid, body in results:
                progress.session_fetched(day)
                if body is None:
                    changed = True
                elif body is REUSE:
                    reused += 1
                if held is not None:
                    if body is REUSE or body is STALE:
                        held.append((sid, None))
                        digests[sid] = old.digests[sid]
                        fetched.append(sid)
                    elif body is not None:
                        digests[sid] = body_digest(body)
                        changed = changed or digests[sid] != old.digests.get(sid)
                        held.append((sid, body))
                        held_bytes += len(body)
                        fetched.append(sid)
                    if changed or held_bytes > HELD_BYTES:
                        for held_sid, held_body in held:
                            write(held_sid, held_body)
                        held = None
                    continue
                previous_body = old.body(sid)
                if body is REUSE or body is STALE:
                    body = previous_body
                elif body is not None and body.rstrip(b"\r\n") != previous_body:
                    changed = True
                if body is not None:
                    if reprotect and body is previous_body:
                        body = protect_output(body, store_output)
                    writer.write(body)
                    reused_digest = old.digests.get(sid) if body is previous_body else None
                    digests[sid] = reused_digest or body_digest(body)
                    fetched.append(sid)
                else:
                    changed = True
        changed = changed or bool(rejects)
        header: RawHeader = {
            "format": 1,
            "start_day": day.isoformat(),
            "store_output": store_output,
            "api_url": client.base_url,
            "principal": principal,
            "started_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "order": fetched,
            "fingerprints": {sid: listed.fingerprints[sid] for sid in fetched},
            "digests": digests,
            "windows": [w.to_json() for w in windows],
            "rejects": rejects,
            "gaps": listed.gaps,
        }
        if changed or previous is None:
            path = writer.commit(header)
            stamp = header_stamp(header)
        else:
            writer.discard()
            path = writer.path
            stamp = header_stamp(old.header) if old.header else None
    total = RequestStats()
    for w in windows:
        total.add(w.stats)
    return ExtractResult(
        day=day,
        path=path,
        sessions_listed=sum(len(w.session_ids) for w in windows),
        sessions_fetched=len(fetched),
        rejects=len(rejects),
        requests=total.requests,
        retries=total.retries,
        windows=len(windows),
        reused=reused,
        changed=changed or previous is None,
        listed_again=before is None,
        stamp=stamp,
        listed_ids=tuple(order),
        read_ids=tuple(sid for sid in fetched if sid not in stale),
        failures=failures,
        stale=frozenset(stale),
        gone=frozenset(gone),
        gaps=tuple(listed.gaps),
    )


def _listed_before(
    header: RawHeader | None, day: date
) -> tuple[list[WindowResult], _Listed, list[str]] | None:
    """The day as its previous sync listed it: windows, ids and list rows' digests, in file order.

    A closed day past the rolling window gains no session (hoop stamps start_date at creation),
    and its final sessions are not read again, so only its sessions not final need reading: by
    id, without listing 2,000 rows to find 40 (a nightly run's cost then follows the sessions
    still open, not the days that hold them). Its windows keep the sessions listed before and
    count this run's requests; the rows rejected when listing stay rejected. None when the
    previous file does not say enough (an older format): the day is listed again.
    """
    if not header:
        return None
    records = header.get("windows")
    if not isinstance(records, list) or not records or not isinstance(header.get("order"), list):
        return None
    carried = [
        r for r in header.get("rejects") or [] if isinstance(r, dict) and r.get("stage") == "list"
    ]
    list_rejected = {r.get("session_id") for r in carried}
    fingerprints = header.get("fingerprints") or {}
    listed = _Listed(day)
    listed.rejects = list(carried)
    # The gaps of that listing stand too (the plan lists a day with gaps again anyway).
    listed.gaps = [g for g in header.get("gaps") or [] if isinstance(g, dict)]
    now = datetime.now(UTC)
    windows: list[WindowResult] = []
    try:
        for record in records:
            # Written by WindowResult.to_json (isoformat, UTC).
            window = Window(
                datetime.fromisoformat(record["window_start"]),
                datetime.fromisoformat(record["window_end"]),
            )
            result = WindowResult(
                window, session_ids=list(record["session_ids"]), started_at=now, finished_at=now
            )
            windows.append(result)
            for sid in result.session_ids:
                if sid not in list_rejected and sid not in listed.by_id:
                    listed.by_id[sid] = (now, result)
                    listed.fingerprints[sid] = fingerprints.get(sid, "")
    except (KeyError, TypeError, ValueError):
        return None
    # The previous file's order first (its bodies are read forward in it), then the sessions that
    # had no body (rejected when read).
    position = {sid: i for i, sid in enumerate(header["order"])}
    order = sorted(listed.by_id, key=lambda sid: (position.get(sid, len(position)), sid))
    return windows, listed, order
