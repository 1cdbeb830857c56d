"""Which days each stage of a staged run does: how a range run resumes without redoing finished days.

The orchestrator (Dagster) runs the sync as three steps, read (hoop -> raw), build (raw -> lake)
and load (lake -> warehouse), each over the days of the run. What to read comes from the sync plan
(``plan.py``, the one place that decides it). The later stages compare a *stamp* of their input
with a stamp of their output: the stamp of a day's data is the latest ``finished_at`` of its list
windows, set when hoop was read and carried unchanged from the raw file's extract record into the
lake's and the warehouse's ``sync_windows``. So:

- read (hoop -> raw): the days the sync plan says are not done, except a day whose raw file is
  newer than the one the warehouse holds: it was read by an earlier, interrupted attempt and waits
  for the next two stages;
- build (raw -> lake): skipped when the lake's complete files carry the raw file's stamp;
- load (lake -> warehouse): skipped when the warehouse carries the lake's stamp.

``redo`` does every day that has its input. A day without its input is *missing*: the stage
reports it after doing the others. This module imports Arrow: the process that reads hoop does not
use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hoop_sessions import paths
from hoop_sessions.build import lake
from hoop_sessions.config import Settings
from hoop_sessions.extract import raw
from hoop_sessions.sync import mirror
from hoop_sessions.sync.ledger import Ledger
from hoop_sessions.sync.plan import plan_days
from hoop_sessions.warehouse import load as warehouse

Stamp = int  # microseconds since the epoch, UTC
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Plan:
    """The days a stage does, and why it skips or cannot do the others."""

    todo: list[date] = field(default_factory=list)
    skipped: dict[date, str] = field(default_factory=dict)
    missing: dict[date, str] = field(default_factory=dict)


def _stamp(moment: datetime) -> Stamp:
    return (moment - EPOCH) // timedelta(microseconds=1)


def raw_stamp(settings: Settings, day: date) -> Stamp | None:
    """Stamp of a day's raw file, from its extract record; None without a readable file."""
    header = raw.read_header(settings.raw_dir, day)
    end = raw.header_stamp(header) if header else None
    if end is None:
        return None
    try:
        return _stamp(datetime.fromisoformat(end))
    except ValueError:
        return None


def lake_stamp(settings: Settings, day: date) -> Stamp | None:
    """Stamp of a day's lake files; None when they are missing or incomplete."""
    if not lake.day_is_consistent(settings.lake_dir, day):
        return None
    windows = pq.read_table(
        paths.table_path(settings.lake_dir, "sync_windows", day), columns=["finished_at"]
    )
    if windows.num_rows == 0:
        return None
    latest = pc.max(windows.column("finished_at")).as_py()
    return _stamp(latest) if latest is not None else None


def warehouse_days(settings: Settings, first: date, last: date) -> dict[date, Stamp]:
    """Stamp of every day in [first, last] that the writer's copy of the warehouse holds (the
    published file before the first load of this version made that copy)."""
    path = settings.load_path if settings.load_path.exists() else settings.warehouse_path
    if not path.exists():
        return {}
    with warehouse.connect(path, read_only=True, lock_timeout=settings.lock_timeout_seconds) as con:
        try:
            stamps = con.execute(
                "SELECT start_day, epoch_us(max(finished_at)) FROM sync_windows "
                "WHERE start_day BETWEEN ? AND ? GROUP BY start_day",
                [first, last],
            ).fetchall()
        except duckdb.CatalogException:  # a warehouse file without the tables yet
            return {}
    return {day: int(stamp) for day, stamp in stamps}


def plan_read(settings: Settings, days: Iterable[date], *, redo: bool) -> Plan:
    """The days to read from hoop: what the library's sync plan (``hoop_sessions.sync.plan``) says,
    except a day read by an earlier attempt and not loaded yet, which the next stages take from
    its raw file."""
    days = sorted(days)
    plan = Plan()
    mirror.hydrate(settings, warehouse=False)  # with an object store: its ledger, in a fresh worker
    if redo or not days:
        plan.todo = days
        return plan
    sync_plan = plan_days(settings, first=days[0], last=days[-1], now=datetime.now(UTC))
    reasons = {task.day: task.reason for task in sync_plan.todo}
    ledger = Ledger(settings.data_dir)
    for day in days:
        entry = ledger.get(day)
        read = raw_stamp(settings, day)
        loaded = _parse_stamp(entry.loaded_stamp) if entry is not None else None
        if day not in reasons:
            plan.skipped[day] = "done: listed completely, every session read and final"
        elif (
            read is not None
            and entry is not None
            and entry.read_stamp is not None
            and (loaded is None or read > loaded)
        ):
            plan.skipped[day] = (
                "read by an earlier attempt, not loaded yet: built and loaded from its raw file"
            )
        else:
            plan.todo.append(day)
    return plan


def _parse_stamp(text: str | None) -> Stamp | None:
    if not text:
        return None
    try:
        return _stamp(datetime.fromisoformat(text))
    except ValueError:
        return None


def plan_build(settings: Settings, days: Iterable[date], *, redo: bool) -> Plan:
    plan = Plan()
    days = sorted(days)
    mirror.pull_days(settings, days)  # with an object store: the raw files another worker read
    for day in days:
        read = raw_stamp(settings, day)
        if read is None:
            plan.missing[day] = f"no readable raw file at {raw.raw_path(settings.raw_dir, day)}"
        elif not redo and lake_stamp(settings, day) == read:
            plan.skipped[day] = "lake files already built from the current raw file"
        else:
            plan.todo.append(day)
    return plan


def plan_load(settings: Settings, days: Iterable[date], *, redo: bool) -> Plan:
    days = sorted(days)
    plan = Plan()
    # With an object store: the newest warehouse and manifests (loads take turns in the
    # hoop_warehouse pool), and the lake files other workers built.
    mirror.hydrate(settings)
    mirror.pull_days(settings, days, lake=True)
    held = warehouse_days(settings, days[0], days[-1]) if days and not redo else {}
    for day in days:
        built = lake_stamp(settings, day)
        if built is None:
            plan.missing[day] = f"no complete lake files under {settings.lake_dir}"
        elif not redo and day in held and held[day] == built:
            plan.skipped[day] = "warehouse already holds the current lake files"
        else:
            plan.todo.append(day)
    return plan
