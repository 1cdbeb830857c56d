"""Listing one closed UTC day: every session whose ``start_date`` falls in it, found by window.

Listing asks for ``[D 00:00:00Z, D+1 00:00:00Z]`` and keeps rows with ``D <= start_date < D+1``,
deduplicated by id. A window holding more rows than offset paging can reach (the gateway refuses
offsets above 10,000) is split in two, recursively, down to one second; each part is paged until
``has_next_page`` is false or a page comes back empty. A single second still too full is split by
list filters (review status, then connection type), checked against the second's exact count;
what no filter reaches is recorded as a gap of the day instead of failing it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

from hoop_sessions.errors import (
    PagingError,
)
from hoop_sessions.extract.client import PAGE_LIMIT, HoopClient, ListPage, RequestStats
from hoop_sessions.extract.ordered import ordered_map
from hoop_sessions.extract.raw import RawHeader, RawWindow
from hoop_sessions.extract.transport import request_priority
from hoop_sessions.extract.values import (
    UUID_RE,
    RecordRejected,
    parse_time,
    truncate_payload,
)
from hoop_sessions.extract.windows import Window, day_bounds, day_window

log = logging.getLogger(__name__)


OFFSET_CAP = 10_000


READABLE_ROWS = OFFSET_CAP + PAGE_LIMIT


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


@dataclass
class Listed:
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
        self.rejects.append(reject_row(sid, "list", reason, row))
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


def reject_row(sid: str | None, stage: str, reason: str, payload: Any) -> dict[str, Any]:
    return {
        "session_id": sid,
        "stage": stage,
        "reason": reason,
        "payload": truncate_payload(payload),
        "seen_at": datetime.now(UTC).isoformat(),
    }


async def list_day(client: HoopClient, day: date) -> tuple[list[WindowResult], Listed]:
    """Every session of ``day``, with the windows that were read to find them; what no list
    filter could reach is in the returned ``Listed.gaps``."""
    listed = Listed(day)
    windows: list[WindowResult] = []
    await _list_window(client, day_window(day), listed, windows, carry=None)
    windows.sort(key=lambda w: w.window.start)
    return windows, listed


async def _list_window(
    client: HoopClient,
    window: Window,
    listed: Listed,
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
    client: HoopClient, window: Window, listed: Listed, result: WindowResult
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
    listed: Listed,
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
    listed: Listed,
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
    not change, so they can be asked for at once instead of one round trip after another. Only when
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

    async with aclosing(ordered_map(offsets, fetch, limit=queued(client.concurrency))) as pages:
        async for item in pages:
            yield item


def queued(concurrency: int) -> int:
    """Requests of one day started at once: twice the connections, so that while the day has
    work left some of it always waits for a connection, and a freed one goes to it rather than to
    a later day read at the same time (the client holds ``concurrency`` connections in all)."""
    return 2 * concurrency


def listed_before(
    header: RawHeader | None, day: date
) -> tuple[list[WindowResult], Listed, list[str]] | None:
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
    listed = Listed(day)
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
