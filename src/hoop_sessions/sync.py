"""What the CLI, the Dagster assets and the tests call: sync a day, a range, or the nightly set.

A day goes extract (hoop → raw file) → build (raw → lake) → load (lake → DuckDB, one transaction).
Each step replaces that day's output and nothing else, so a failure at any point leaves the day's
previous content in the warehouse, and a rerun converges.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hoop_sessions import warehouse
from hoop_sessions.client import HoopClient
from hoop_sessions.config import Settings
from hoop_sessions.errors import DayFailedError, HoopSessionsError, PartialVisibilityError
from hoop_sessions.extract import ExtractResult, PreviousDay, extract_day, ordered_map
from hoop_sessions.progress import NullProgress, Progress
from hoop_sessions.raw import header_stamp, read_header
from hoop_sessions.transport import request_priority
from hoop_sessions.values import BuildResult, parse_time, principal_sees_all
from hoop_sessions.windows import days_between, is_closed
from hoop_sessions.worker import BuildWorker

log = logging.getLogger(__name__)

# Days read from hoop at once. The requests of a later day get a connection only when no earlier
# day's request waits for one (transport.request_priority): a day read ahead fills the round trips
# in which an earlier day waits for its list pages or the last of its gets, and never slows it.
READ_AHEAD_DAYS = 4


@dataclass(frozen=True)
class DayResult:
    day: date
    extract: ExtractResult | None
    build: BuildResult | None  # None when nothing changed since the last sync of the day
    loaded_rows: dict[str, int]

    def summary(self) -> dict[str, Any]:
        listed = self.extract.sessions_listed if self.extract else 0
        return {
            "day": self.day.isoformat(),
            "changed": self.build is not None,
            "sessions_listed": self.build.sessions_listed if self.build else listed,
            "sessions_loaded": self.build.sessions_loaded if self.build else None,
            "sessions_rejected": self.build.sessions_rejected if self.build else None,
            "sessions_reused": self.extract.reused if self.extract else 0,
            "listed_again": self.extract.listed_again if self.extract else True,
            "requests": self.extract.requests if self.extract else 0,
            "retries": self.extract.retries if self.extract else 0,
            "rows": self.loaded_rows,
        }


@dataclass
class RunResult:
    days: list[DayResult] = field(default_factory=list)
    failed: dict[date, str] = field(default_factory=dict)
    skipped: list[date] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


async def preflight(client: HoopClient, settings: Settings) -> dict[str, Any]:
    """Who the token is; refuse a token that sees only part of the organization's sessions."""
    info = await client.userinfo()
    principal = {
        "id": info.get("id"),
        "email": info.get("email"),
        "groups": [str(g) for g in info.get("groups") or []],
        "is_admin": info.get("is_admin") is True,  # only a JSON true: the string "false" is truthy
        "org_id": info.get("org_id"),
    }
    if not principal_sees_all(principal) and not settings.allow_partial_visibility:
        raise PartialVisibilityError(
            f"the token belongs to {principal['email'] or principal['id']} whose groups "
            f"{principal['groups']} include neither 'admin' nor 'auditor': hoop would silently show "
            "it only its own sessions and those it may review, and the warehouse would look complete "
            "while it is not. Use a token of an admin or auditor user, or set "
            "HOOP_ALLOW_PARTIAL_VISIBILITY=1 to sync that partial view on purpose"
        )
    return principal


def load_day(settings: Settings, day: date) -> dict[str, int]:
    """Lake files of a day into the warehouse, waiting for readers to let go of the file."""
    with warehouse.connect(settings.warehouse_path, lock_timeout=settings.lock_timeout_seconds) as con:
        counts = warehouse.load_day(con, settings.lake_dir, day)
    return counts


async def _extract(
    settings: Settings,
    day: date,
    *,
    client: HoopClient,
    principal: dict[str, Any],
    progress: Progress,
    previous: PreviousDay | None,
) -> ExtractResult:
    settings.ensure_data_dir()
    try:
        return await extract_day(
            client,
            raw_dir=settings.raw_dir,
            day=day,
            concurrency=settings.concurrency,
            principal=principal,
            progress=progress,
            previous=previous,
            store_output=settings.store_output,
        )
    except HoopSessionsError as exc:
        raise DayFailedError(day, exc) from exc


async def _read_days(
    settings: Settings,
    days: list[date],
    *,
    client: HoopClient,
    principal: dict[str, Any],
    progress: Progress,
    previous: dict[date, PreviousDay],
) -> AsyncGenerator[tuple[date, ExtractResult | DayFailedError], None]:
    """Each day read into its raw file, up to READ_AHEAD_DAYS at once, yielded in day order.

    A failed day is yielded with its error once its own requests have stopped; the other days go on.
    Close it (``aclosing``): a run cut short cancels the days still being read.
    """

    async def read(day: date) -> tuple[date, ExtractResult | DayFailedError]:
        request_priority.set((day.toordinal(),))  # this task and the tasks it starts
        try:
            return day, await _extract(
                settings, day, client=client, principal=principal, progress=progress,
                previous=previous.get(day),
            )
        except DayFailedError as exc:
            return day, exc

    async with aclosing(ordered_map(days, read, limit=READ_AHEAD_DAYS)) as reads:
        async for item in reads:
            yield item


def build_and_load(
    settings: Settings, day: date, changed: bool = True
) -> tuple[BuildResult | None, dict[str, int]]:
    """The CPU half of a day: raw file into lake files and manifest, then into the warehouse."""
    if not changed:
        return None, {}
    built = build_and_record(settings, day)
    return built, load_day(settings, day)


def build_and_record(settings: Settings, day: date) -> BuildResult:
    """Raw file into lake files, then the day's tamper-evidence manifest."""
    # Imported here: building (Arrow, Parquet) runs in the worker process; the process that
    # reads hoop never needs it when a worker builds.
    from hoop_sessions import manifest
    from hoop_sessions.build import build_day

    built = build_day(settings.raw_dir, settings.lake_dir, day)
    manifest.record_day(settings.data_dir, day)
    return built


def previous_days(settings: Settings, days: Iterable[date], *, today: date) -> dict[date, PreviousDay]:
    """For each day already loaded: its raw file and the sessions that were final when read.

    Asked once before a run starts, so that reading a day never waits for the load of another.
    Days within the rolling window (and yesterday) are listed again; older ones have only their
    sessions that are not final read again, by id.
    """
    listed_from = today - timedelta(days=max(settings.rolling_days, 1))
    days = sorted(set(days))
    if not days or not settings.warehouse_path.exists():
        return {}
    with warehouse.connect(
        settings.warehouse_path, read_only=True, lock_timeout=settings.lock_timeout_seconds
    ) as con:
        loaded = warehouse.loaded_stamps(con, days[0], days[-1])
        previous = {}
        for day in days:
            if day not in loaded:
                continue
            header = read_header(settings.raw_dir, day)
            stamp = header_stamp(header) if header else None
            raw_is_loaded = stamp is not None and parse_time(stamp.replace("+00:00", "Z"), "stamp") == loaded[day]
            previous[day] = PreviousDay(
                settings.raw_dir, frozenset(warehouse.final_session_ids(con, day)), raw_is_loaded,
                relist=day >= listed_from,
            )
        return previous


def rebuild_day(settings: Settings, day: date) -> DayResult:
    """Re-flatten and reload a day from its raw file, without calling hoop."""
    settings.ensure_data_dir()
    built = build_and_record(settings, day)
    rows = load_day(settings, day)
    return DayResult(day, None, built, rows)


async def sync_days_async(
    settings: Settings,
    days: Iterable[date],
    *,
    progress: Progress | None = None,
    now: datetime | None = None,
    transport: Any = None,
    reuse: bool = True,
) -> RunResult:
    """Sync each day; a failed day is reported and the others still run.

    Days are pipelined: while day N is built and loaded in a worker process (flattening and
    Parquet encoding are CPU work that would otherwise compete with the HTTP client for the
    interpreter), the days after it are read from hoop (``_read_days``). One worker keeps loads in
    day order, one at a time.
    """
    now = now or datetime.now(UTC)
    days = sorted(set(days))
    for day in days:
        if not is_closed(day, now):
            raise HoopSessionsError(
                f"{day} is not over yet (now is {now:%Y-%m-%d %H:%M} UTC): only closed UTC days can "
                "be synced completely"
            )
    progress = progress or NullProgress()
    result = RunResult()
    loop = asyncio.get_running_loop()
    # Started when a day must be rebuilt with more days still to read: a worker's start-up
    # (importing Arrow and DuckDB) is wasted on a run where nothing changed.
    worker: BuildWorker | None = None
    pending: tuple[ExtractResult, asyncio.Future[Any]] | None = None

    async def finish(extracted: ExtractResult, future: asyncio.Future[Any]) -> None:
        try:
            built, rows = await future
        except HoopSessionsError as exc:
            log.error("%s", DayFailedError(extracted.day, exc))
            result.failed[extracted.day] = str(exc)
            return
        day_result = DayResult(extracted.day, extracted, built, rows)
        result.days.append(day_result)
        progress.day_done(extracted.day, day_result.summary())

    previous = previous_days(settings, days, today=now.date()) if reuse else {}
    try:
        async with HoopClient(settings, transport=transport) as client:
            principal = await preflight(client, settings)
            reads = _read_days(
                settings, days, client=client, principal=principal, progress=progress, previous=previous
            )
            async with aclosing(reads):
                async for day, extracted in reads:
                    if isinstance(extracted, DayFailedError):
                        log.error("%s", extracted)
                        result.failed[day] = str(extracted.cause)
                        continue
                    if pending is not None:
                        await finish(*pending)
                    if worker is None and extracted.changed and day != days[-1]:
                        worker = BuildWorker()
                    future = loop.run_in_executor(
                        None, worker.build_and_load if worker else build_and_load,
                        settings, day, extracted.changed,
                    )
                    pending = (extracted, future)
            if pending is not None:
                await finish(*pending)
                pending = None
    finally:
        if pending is not None:
            # Leave no load half-way in a worker when the run is cut short: let it finish.
            await asyncio.wait([pending[1]])
        if worker is not None:
            worker.close()
    result.days.sort(key=lambda d: d.day)
    return result


async def extract_days_async(
    settings: Settings,
    days: Iterable[date],
    *,
    progress: Progress | None = None,
    reuse: bool = True,
) -> tuple[dict[date, ExtractResult], dict[date, str]]:
    """Read each day from hoop into its raw file only (the first stage, for orchestrators).

    One preflight and one connection pool for all days; a failed day is reported with its cause
    and does not stop the others. Errors of the whole run (auth, visibility) are raised.
    """
    progress = progress or NullProgress()
    settings.ensure_data_dir()
    done: dict[date, ExtractResult] = {}
    failed: dict[date, str] = {}
    days = sorted(set(days))
    previous = previous_days(settings, days, today=datetime.now(UTC).date()) if reuse else {}
    async with HoopClient(settings) as client:
        principal = await preflight(client, settings)
        reads = _read_days(
            settings, days, client=client, principal=principal, progress=progress, previous=previous
        )
        async with aclosing(reads):
            async for day, result in reads:
                if isinstance(result, DayFailedError):
                    log.error("%s: reading hoop failed, the day's previous raw file is kept: %s", day, result.cause)
                    failed[day] = str(result.cause)
                    continue
                done[day] = result
                progress.day_done(
                    day,
                    {"sessions_listed": result.sessions_listed, "requests": result.requests,
                     "retries": result.retries},
                )
    return done, failed


def sync_days(settings: Settings, days: Iterable[date], **kwargs: Any) -> RunResult:
    return asyncio.run(sync_days_async(settings, days, **kwargs))


def backfill_days(
    settings: Settings, start: date, end: date, *, resume: bool = True, now: datetime | None = None
) -> tuple[list[date], list[date]]:
    """The days of a backfill, and those skipped because they are loaded and final.

    With ``resume`` a rerun after a failure does not redo days that are already loaded and hold
    no session that may still change; ``resume=False`` redoes every day.
    """
    days = days_between(start, end)
    if not resume or not settings.warehouse_path.exists():
        return days, []
    with warehouse.connect(
        settings.warehouse_path, read_only=True, lock_timeout=settings.lock_timeout_seconds
    ) as con:
        loaded = set(warehouse.loaded_days(con, start, end))
        open_days = set(warehouse.non_final_days(con, start, end))
    done = [d for d in days if d in loaded and d not in open_days]
    return [d for d in days if d not in done], done


def nightly_days(settings: Settings, *, today: date, has_warehouse: bool | None = None) -> list[date]:
    """Yesterday, the recent rolling window, and earlier days within the horizon not yet final."""
    yesterday = today - timedelta(days=1)
    first = settings.first_day(today)
    days = {yesterday}
    days.update(yesterday - timedelta(days=i) for i in range(settings.rolling_days))
    if settings.warehouse_path.exists() if has_warehouse is None else has_warehouse:
        with warehouse.connect(
            settings.warehouse_path, read_only=True, lock_timeout=settings.lock_timeout_seconds
        ) as con:
            horizon = today - timedelta(days=settings.final_horizon_days)
            days.update(warehouse.non_final_days(con, horizon, yesterday))
    return sorted(d for d in days if first <= d <= yesterday)

