"""The sync plan: which days a run reads, whether each is listed again, and why.

The one place that decides what to read. The command line (``backfill``, ``sync``), the Dagster
assets and the nightly schedule all ask it. It works from the sync ledger (``ledger.py``), never
from what the warehouse holds:

- a day never read, read but not loaded, or whose last read failed is listed;
- a day listed less than ``HOOP_SETTLE_HOURS`` after its end (on the gateway's clock) is listed
  again: hoop stamps ``created_at`` before slow work and commits later
  (hoop: gateway/api/session/session.go), and sessions recorded through a sidecar can appear a
  day late;
- yesterday and the ``HOOP_ROLLING_DAYS`` before it are listed again (owners edit ``metadata``);
- an older day that holds sessions not final, or sessions whose last read failed, has those read
  again by id, whatever its age (``HOOP_FINAL_HORIZON_DAYS`` caps that only when set, and the run
  reports what the cap left);
- every other day is done and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from hoop_sessions.config import Settings
from hoop_sessions.extract.windows import days_between
from hoop_sessions.sync.ledger import DayEntry, Ledger


@dataclass(frozen=True)
class DayTask:
    day: date
    reason: str
    relist: bool


@dataclass
class SyncPlan:
    todo: list[DayTask] = field(default_factory=list)
    done: list[date] = field(default_factory=list)
    # Days the HOOP_FINAL_HORIZON_DAYS cap left out, with what they still hold.
    left: dict[date, str] = field(default_factory=dict)

    @property
    def days(self) -> list[date]:
        return [task.day for task in self.todo]

    @property
    def relist(self) -> frozenset[date]:
        return frozenset(task.day for task in self.todo if task.relist)


def last_closed_day(now: datetime, margin: timedelta) -> date:
    """The latest day whose end lies at least ``margin`` in the past."""
    return (now - margin).astimezone(UTC).date() - timedelta(days=1)


def first_day(settings: Settings, today: date | None = None) -> date:
    """The first day of the daily partitions: HOOP_SYNC_START_DATE, else the day recorded by the
    first run in the sync ledger, else 30 days before today (by default, the UTC date now)."""
    if settings.sync_start_date is not None:
        return settings.sync_start_date
    today = today or datetime.now(UTC).date()
    return Ledger(settings.data_dir).first_day() or today - timedelta(days=30)


def record_first_day(settings: Settings, today: date) -> None:
    """Fix the first partition day on the first run, so that it never slides forward."""
    if settings.sync_start_date is None:
        ledger = Ledger(settings.data_dir)
        if ledger.first_day() is None:
            ledger.record_first_day(today - timedelta(days=30))


def _why(
    entry: DayEntry | None, day: date, *, settings: Settings, rolling_from: date
) -> tuple[str, bool] | None:
    """Why ``day`` must be read and whether it is listed, or None when it is done."""
    if entry is None:
        return "never read", True
    if entry.error is not None:
        return (
            f"its last read failed ({entry.error.get('failures', 1)} time(s)): {entry.error.get('error')}",
            True,
        )
    if entry.listed_at is None:
        return "never listed completely", True
    if not entry.loaded:
        return "read but not loaded", True
    if entry.gaps:
        return f"{len(entry.gaps)} listing gap(s)", True
    if not entry.settled(timedelta(hours=settings.settle_hours)):
        return f"listed within {settings.settle_hours:g} h of its end", True
    if day >= rolling_from:
        return "in the rolling window", True
    failing = entry.failing_sessions()
    if failing:
        return f"{len(failing)} session(s) could not be read", False
    still_open = entry.open_sessions()
    if still_open:
        return f"{len(still_open)} session(s) not final", False
    return None


def plan_days(
    settings: Settings,
    *,
    first: date,
    last: date,
    now: datetime,
    redo: bool = False,
) -> SyncPlan:
    """The days from ``first`` to ``last`` (inclusive) a run must read, and how."""
    ledger = Ledger(settings.data_dir)
    plan = SyncPlan()
    yesterday = now.astimezone(UTC).date() - timedelta(days=1)
    # The rolling window: yesterday and the days before it, HOOP_ROLLING_DAYS in all.
    rolling_from = (
        yesterday - timedelta(days=settings.rolling_days - 1)
        if settings.rolling_days
        else now.date()
    )
    horizon = (
        yesterday - timedelta(days=settings.final_horizon_days)
        if settings.final_horizon_days
        else None
    )
    for day in days_between(first, last):
        if redo:
            plan.todo.append(DayTask(day, "redo", True))
            continue
        why = _why(ledger.get(day), day, settings=settings, rolling_from=rolling_from)
        if why is None:
            plan.done.append(day)
        elif horizon is not None and not why[1] and day < horizon:
            plan.left[day] = why[0]
        else:
            plan.todo.append(DayTask(day, why[0], why[1]))
    return plan


def nightly_plan(settings: Settings, *, now: datetime) -> SyncPlan:
    """Every day from the first partition day to the last closed one that is not done."""
    margin = timedelta(minutes=settings.close_margin_minutes)
    today = now.astimezone(UTC).date()
    return plan_days(
        settings, first=first_day(settings, today), last=last_closed_day(now, margin), now=now
    )
