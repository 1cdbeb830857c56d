"""Daily UTC partitions: one per closed UTC day, the unit of sync, idempotency and backfill.

The first day is ``HOOP_SYNC_START_DATE``, else the day the first sync recorded in the sync
ledger (30 days before it ran), so that it never slides forward; before any sync, 30 days before
the day the code location loads (``hoop_sessions.sync.plan.first_day``). ``end_offset=0`` makes the
last partition yesterday: a day can only be listed completely once it is over. Nothing here reads
the environment on import: ``pipelines.definitions`` passes it in when the code location loads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from dagster import BackfillPolicy, DailyPartitionsDefinition

from hoop_sessions.config import Settings
from hoop_sessions.errors import ConfigError
from hoop_sessions.sync.plan import first_day

DAYS_PER_RUN_VARIABLE = "HOOP_BACKFILL_DAYS_PER_RUN"


def daily_partitions(first_day: date) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(
        start_date=first_day.isoformat(), timezone="UTC", end_offset=0, fmt="%Y-%m-%d"
    )


def partitions_from_env(environ: Mapping[str, str]) -> DailyPartitionsDefinition:
    """The daily partitions from ``HOOP_SYNC_START_DATE`` or the sync ledger under
    ``HOOP_DATA_DIR``; called when the code location loads (``pipelines.definitions``)."""
    # Without the token: a malformed one must fail the run that uses it (one clear line), not the
    # loading of the code location.
    return daily_partitions(first_day(Settings.from_env(environ, api_token=None)))


def day_of(partition_key: str) -> date:
    return date.fromisoformat(partition_key)


def days_of(partition_keys: Sequence[str]) -> list[date]:
    """The days of a run's partition keys, oldest first."""
    return sorted(day_of(key) for key in partition_keys)


def backfill_policy(environ: Mapping[str, str]) -> BackfillPolicy:
    """How a backfill is cut into runs, from ``HOOP_BACKFILL_DAYS_PER_RUN``.

    Unset or 0: one run for the whole range (one preflight, one connection pool). N > 0: runs of
    at most N days, which a run launcher can place on separate workers; the warehouse steps still
    take turns through their pool.
    """
    raw = environ.get(DAYS_PER_RUN_VARIABLE, "").strip()
    try:
        days = int(raw) if raw else 0
    except ValueError:
        raise ConfigError(
            f"{DAYS_PER_RUN_VARIABLE} must be a whole number of days (0 or unset: one run per "
            f"backfill), not {raw!r}"
        ) from None
    if days < 0:
        raise ConfigError(
            f"{DAYS_PER_RUN_VARIABLE} must be 0 (one run per backfill) or more, not {days}"
        )
    return BackfillPolicy.multi_run(days) if days else BackfillPolicy.single_run()
