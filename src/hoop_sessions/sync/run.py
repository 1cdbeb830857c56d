"""What the CLI, the Dagster assets and the tests call: sync a day, a range, or the nightly set.

A day goes extract (hoop → raw file) → build (raw → lake) → load (lake → DuckDB, one transaction).
Each step replaces that day's output and nothing else, so a failure at any point leaves the day's
previous content in the warehouse, and a rerun converges.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Collection, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hoop_sessions.build.result import BuildResult
from hoop_sessions.config import Settings
from hoop_sessions.errors import DayFailedError, HoopSessionsError, PartialVisibilityError
from hoop_sessions.extract import windows
from hoop_sessions.extract.client import HoopClient
from hoop_sessions.extract.day import ExtractResult, PreviousDay, extract_day
from hoop_sessions.extract.ordered import ordered_map
from hoop_sessions.extract.principal import Principal, principal_sees_all
from hoop_sessions.extract.raw import header_stamp, read_header
from hoop_sessions.extract.transport import request_priority
from hoop_sessions.lock import writer_lock
from hoop_sessions.progress import DaySummary, NullProgress, Progress
from hoop_sessions.sync import mirror
from hoop_sessions.sync.day import build_and_load, build_and_record, load_and_record
from hoop_sessions.sync.ledger import (
    Ledger,
    record_failed,
    record_read,
    same_stamp,
    table_rows,
)
from hoop_sessions.sync.plan import SyncPlan, nightly_plan, plan_days, record_first_day
from hoop_sessions.sync.worker import BuildWorker
from hoop_sessions.warehouse import load as warehouse
from hoop_sessions.warehouse import snapshot

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

    def summary(self) -> DaySummary:
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
    # Days not over yet on the gateway's clock (with HOOP_CLOSE_MARGIN_MINUTES): left for later.
    not_closed: list[date] = field(default_factory=list)
    # What is still incomplete after the run, per day: sessions that could not be read, gaps.
    incomplete: dict[date, list[str]] = field(default_factory=dict)
    # Days the HOOP_FINAL_HORIZON_DAYS cap left out.
    left: dict[date, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.incomplete and not self.not_closed


async def preflight(client: HoopClient, settings: Settings) -> Principal:
    """Who the token is; refuse a token that sees only part of the organization's sessions."""
    info = await client.userinfo()
    principal: Principal = {
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


async def _extract(
    settings: Settings,
    day: date,
    *,
    client: HoopClient,
    principal: Principal,
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
    principal: Principal,
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
                settings,
                day,
                client=client,
                principal=principal,
                progress=progress,
                previous=previous.get(day),
            )
        except DayFailedError as exc:
            return day, exc

    async with aclosing(ordered_map(days, read, limit=READ_AHEAD_DAYS)) as reads:
        async for item in reads:
            yield item


def previous_days(
    settings: Settings,
    days: Iterable[date],
    *,
    now: datetime,
    relist: Collection[date] | None = None,
) -> dict[date, PreviousDay]:
    """For each day read before: its raw file and, from the sync ledger, its final sessions.

    Asked once before a run starts, so that reading a day never waits for the load of another.
    Days in ``relist`` (by default: those the sync plan lists again) are listed again;
    the others have only their sessions that are not final (or failed) read again, by id.
    """
    days = sorted(set(days))
    if relist is None and days:
        # What the sync plan lists again (never listed completely, failed, not settled, in the
        # rolling window), and any day of the rolling window asked for.
        listed_from = now.date() - timedelta(days=max(settings.rolling_days, 1))
        planned = plan_days(settings, first=days[0], last=days[-1], now=now).relist
        relist = {d for d in days if d >= listed_from} | planned
    relist = relist or ()
    ledger = Ledger(settings.data_dir)
    previous = {}
    for day in days:
        entry = ledger.get(day)
        if entry is None:
            continue
        header = read_header(settings.raw_dir, day)
        stamp = header_stamp(header) if header else None
        if stamp is None:
            continue
        previous[day] = PreviousDay(
            settings.raw_dir,
            entry.final_ids(),
            raw_is_loaded=same_stamp(stamp, entry.loaded_stamp),
            relist=day in relist,
            rebuild=entry.due_final(now),
        )
    return previous


def rebuild_day(settings: Settings, day: date, *, publish: bool = True) -> DayResult:
    """Re-flatten and reload a day from its raw file, without calling hoop.

    ``publish=False`` leaves publishing to a caller that rebuilds several days."""
    settings.ensure_data_dir()
    with writer_lock(
        settings.data_dir, what=f"rebuild of {day}", timeout=settings.lock_timeout_seconds
    ):
        mirror.hydrate(settings)
        mirror.pull_days(settings, [day])
        built = build_and_record(settings, day)
        rows = load_and_record(settings, day)
        mirror.publish_day(settings, day)
        if publish:
            publish_warehouse(settings, [day])
    return DayResult(day, None, built, rows)


def publish_warehouse(
    settings: Settings, days: Iterable[date] = (), *, lock_held: bool = False
) -> snapshot.PublishResult | None:
    """Give analysts the warehouse as the run leaves it: once at the end of a run that loaded
    days or refreshed the ledger tables, not after every day (each publish copies the file).

    With an object store the published file is then uploaded as ``<HOOP_DATA_DIR>/warehouse.duckdb``,
    followed by the ledger of the run's ``days`` (``mirror.publish_warehouse``).
    """
    result = snapshot.publish(settings, lock_held=lock_held)
    mirror.publish_warehouse(settings, days)
    return result


async def sync_days_async(
    settings: Settings,
    days: Iterable[date],
    *,
    progress: Progress | None = None,
    now: datetime | None = None,
    transport: Any = None,
    reuse: bool = True,
    relist: Collection[date] | None = None,
    findings: bool = False,
) -> RunResult:
    """``_sync_days`` under the data directory's writer lock: a run of the command line and a
    Dagster run on the same data directory take turns, and the one that waits says why.

    With ``findings`` the compliance findings are refreshed when a day's rows changed, before the
    run's one publish: analysts never see new days beside old findings, and the warehouse is
    copied (and, with an object store, uploaded) once."""
    days = sorted(set(days))
    settings.ensure_data_dir()
    what = f"sync of {len(days)} day(s)" + (f" ({days[0]} .. {days[-1]})" if days else "")
    with writer_lock(settings.data_dir, what=what, timeout=settings.lock_timeout_seconds):
        mirror.hydrate(settings)  # with an object store: continue where the last run left off
        try:
            result = await _sync_days(settings, days, progress, now, transport, reuse, relist)
        except BaseException:
            # Each day's load is its own transaction: the days loaded before the failure stand.
            publish_warehouse(settings, days)
            raise
        if findings and any(day.build is not None for day in result.days):
            from hoop_sessions.compliance.rules import refresh_findings

            with snapshot.connect_writer(settings) as con:
                refresh_findings(con)
        publish_warehouse(settings, days)
        return result


async def _sync_days(  # the options of sync_days_async, passed through
    settings: Settings,
    days: list[date],
    progress: Progress | None,
    now: datetime | None,
    transport: Any,
    reuse: bool,
    relist: Collection[date] | None,
) -> RunResult:
    """Sync each day; a failed day is reported and the others still run.

    Days are pipelined: while day N is built and loaded in a worker process (flattening and
    Parquet encoding are CPU work that would otherwise compete with the HTTP client for the
    interpreter), the days after it are read from hoop (``_read_days``). One worker keeps loads in
    day order, one at a time. Every step is recorded in the sync ledger as it completes.
    """
    now = now or datetime.now(UTC)
    for day in days:  # sorted and unique (sync_days_async)
        if not windows.is_closed(day, now):
            raise HoopSessionsError(
                f"{day} is not over yet (now is {now:%Y-%m-%d %H:%M} UTC): only closed UTC days can "
                "be synced completely"
            )
    progress = progress or NullProgress()
    result = RunResult()
    ledger = Ledger(settings.data_dir)
    loop = asyncio.get_running_loop()
    # Started when a day must be rebuilt with more days still to read: a worker's start-up
    # (importing Arrow and DuckDB) is wasted on a run where nothing changed.
    worker: BuildWorker | None = None
    pending: tuple[ExtractResult, asyncio.Future[Any]] | None = None
    published_at = time.monotonic()

    async def finish(extracted: ExtractResult, future: asyncio.Future[Any]) -> None:
        try:
            built, rows = await future
        except HoopSessionsError as exc:
            log.error("%s", DayFailedError(extracted.day, exc))
            result.failed[extracted.day] = str(exc)
            return
        if built is not None and settings.data_url:
            # The day's files, its commit, its manifests: before any warehouse holding it is
            # published to the store.
            await asyncio.to_thread(mirror.publish_day, settings, extracted.day)
        day_result = DayResult(extracted.day, extracted, built, rows)
        result.days.append(day_result)
        progress.day_done(extracted.day, day_result.summary())
        nonlocal published_at
        if built is not None and time.monotonic() - published_at >= settings.publish_minutes * 60:
            # A long run publishes on the way (no load is under way here: the next day's build
            # starts after this one finished): analysts see its progress, and with an object
            # store a worker that dies keeps what it loaded.
            await asyncio.to_thread(
                publish_warehouse, settings, [d.day for d in result.days], lock_held=True
            )
            published_at = time.monotonic()

    try:
        settings.ensure_data_dir()
        record_first_day(settings, now.date())
        async with HoopClient(settings, transport=transport) as client:
            principal = await preflight(client, settings)
            # Closed on the gateway's clock: a day is read once HOOP_CLOSE_MARGIN_MINUTES past its
            # end there (a session stamped before midnight can be committed after it).
            gateway_now = client.gateway_now() or now
            margin = timedelta(minutes=settings.close_margin_minutes)
            result.not_closed = [
                d for d in days if not windows.is_closed(d, min(gateway_now, now), margin)
            ]
            for day in result.not_closed:
                log.warning(
                    "%s: not read: it ended less than %g minutes ago on the gateway's clock (%s)",
                    day,
                    settings.close_margin_minutes,
                    f"{gateway_now:%Y-%m-%d %H:%M:%S} UTC",
                )
            days = [d for d in days if d not in result.not_closed]
            if reuse:
                mirror.pull_days(settings, days)  # the raw files whose unchanged bodies are reused
            previous = previous_days(settings, days, now=now, relist=relist) if reuse else {}
            reads = _read_days(
                settings,
                days,
                client=client,
                principal=principal,
                progress=progress,
                previous=previous,
            )
            async with aclosing(reads):
                async for day, extracted in reads:
                    if isinstance(extracted, DayFailedError):
                        log.error("%s", extracted)
                        result.failed[day] = str(extracted.cause)
                        record_failed(ledger, day, str(extracted.cause), at=gateway_now)
                        continue
                    _record_read(ledger, extracted, gateway_now)
                    if pending is not None:
                        await finish(*pending)
                    if worker is None and extracted.changed and day != days[-1]:
                        worker = BuildWorker()
                    future = loop.run_in_executor(
                        None,
                        worker.build_and_load if worker else build_and_load,
                        settings,
                        day,
                        extracted.changed,
                    )
                    pending = (extracted, future)
            if pending is not None:
                await finish(*pending)
                pending = None
    finally:
        if pending is not None:
            # Leave no load half-way in a worker when the run is cut short: let it finish, and
            # count it as done when it committed.
            await asyncio.wait([pending[1]])
            extracted, future = pending
            if not future.cancelled() and future.exception() is None:
                built, rows = future.result()
                progress.day_done(
                    extracted.day, DayResult(extracted.day, extracted, built, rows).summary()
                )
        if worker is not None:
            worker.close()
    result.days.sort(key=lambda d: d.day)
    result.incomplete = incomplete_days(ledger, [d.day for d in result.days])
    refresh_ledger_tables(settings)
    return result


def refresh_ledger_tables(settings: Settings) -> None:
    """The warehouse's copy of the sync ledger (``sync_ledger``, ``sync_ledger_sessions``)."""
    if not (settings.load_path.exists() or settings.warehouse_path.exists()):
        return  # nothing loaded yet: no warehouse is made for the ledger alone
    with snapshot.connect_writer(settings) as con:
        if not warehouse.has_table(con, "sync_ledger_sessions"):
            # Only once per warehouse: creating tables imports the contract's Arrow schemas,
            # which the process that reads hoop otherwise never loads.
            warehouse.ensure_schema(con)
        days, sessions = table_rows(
            Ledger(settings.data_dir), settle=timedelta(hours=settings.settle_hours)
        )
        warehouse.replace_ledger(con, days, sessions)


def _record_read(ledger: Ledger, extracted: ExtractResult, gateway_now: datetime) -> None:
    record_read(
        ledger,
        extracted.day,
        gateway_now=gateway_now,
        stamp=extracted.stamp,
        listed=extracted.listed_again,
        read_ids=extracted.read_ids,
        listed_ids=extracted.listed_ids,
        failures=extracted.failures,
        stale=extracted.stale,
        gone=extracted.gone,
        gaps=list(extracted.gaps),
    )


def incomplete_days(ledger: Ledger, days: Iterable[date]) -> dict[date, list[str]]:
    """What the ledger still misses of each day: sessions that could not be read, gaps."""
    found: dict[date, list[str]] = {}
    for entry in ledger.entries(sorted(set(days))):
        items = [
            f"session {sid}: {s.last_error} ({s.failures} run(s) in a row"
            + (", previous copy kept" if s.stale_since else "")
            + (f", gone from the gateway since {s.gone_since}" if s.gone_since else "")
            + ")"
            for sid, s in entry.failing_sessions().items()
        ]
        items += [
            f"listing gap {g.get('window_start')} .. {g.get('window_end')}: {g.get('reason')}"
            for g in entry.gaps
        ]
        if items:
            found[entry.day] = items
    return found


async def extract_days_async(
    settings: Settings,
    days: Iterable[date],
    *,
    progress: Progress | None = None,
    reuse: bool = True,
) -> tuple[dict[date, ExtractResult], dict[date, str]]:
    """``_extract_days`` under the data directory's writer lock (see ``sync_days_async``)."""
    days = sorted(set(days))
    settings.ensure_data_dir()
    with writer_lock(
        settings.data_dir,
        what=f"read of {len(days)} day(s) from hoop",
        timeout=settings.lock_timeout_seconds,
    ):
        mirror.hydrate(settings, warehouse=False)
        done, failed = await _extract_days(settings, days, progress=progress, reuse=reuse)
        # With an object store: the raw files read, for the build in whatever worker runs it next.
        for day in sorted(done):
            await asyncio.to_thread(mirror.publish_raw, settings, day)
        mirror.push_ledger(settings, days)
        return done, failed


async def _extract_days(
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
    record_first_day(settings, datetime.now(UTC).date())
    done: dict[date, ExtractResult] = {}
    failed: dict[date, str] = {}
    days = sorted(set(days))
    ledger = Ledger(settings.data_dir)
    if reuse:
        mirror.pull_days(settings, days)
    previous = previous_days(settings, days, now=datetime.now(UTC)) if reuse else {}
    async with HoopClient(settings) as client:
        principal = await preflight(client, settings)
        gateway_now = client.gateway_now() or datetime.now(UTC)
        reads = _read_days(
            settings, days, client=client, principal=principal, progress=progress, previous=previous
        )
        async with aclosing(reads):
            async for day, result in reads:
                if isinstance(result, DayFailedError):
                    log.error(
                        "%s: reading hoop failed, the day's previous raw file is kept: %s",
                        day,
                        result.cause,
                    )
                    failed[day] = str(result.cause)
                    record_failed(ledger, day, str(result.cause), at=gateway_now)
                    continue
                _record_read(ledger, result, gateway_now)
                done[day] = result
                progress.day_done(
                    day,
                    {
                        "sessions_listed": result.sessions_listed,
                        "requests": result.requests,
                        "retries": result.retries,
                    },
                )
    return done, failed


def sync_days(settings: Settings, days: Iterable[date], **kwargs: Any) -> RunResult:
    return asyncio.run(sync_days_async(settings, days, **kwargs))


def backfill_days(
    settings: Settings, start: date, end: date, *, resume: bool = True, now: datetime | None = None
) -> SyncPlan:
    """The plan of a backfill: the days to read (and which are listed again), and the days the
    sync ledger says are done (``plan.done``).

    With ``resume`` a rerun after a failure does not redo days that are done (listed completely
    and settled, every session read and final); ``resume=False`` redoes every day.
    """
    mirror.hydrate(settings, warehouse=False)  # the ledger of the store, in a fresh container
    return plan_days(settings, first=start, last=end, now=now or datetime.now(UTC), redo=not resume)


def nightly_days(settings: Settings, *, now: datetime | None = None) -> SyncPlan:
    """The nightly set: every day from the first partition day to the last closed one that the
    ledger does not call done, whatever its age (see ``plan.py``)."""
    now = now or datetime.now(UTC)
    mirror.hydrate(settings, warehouse=False)  # the ledger of the store, in a fresh container
    record_first_day(settings, now.date())
    return nightly_plan(settings, now=now)
