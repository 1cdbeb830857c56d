"""Daily UTC partitions: one per closed UTC day, the unit of sync, idempotency and backfill.

The first day is ``HOOP_SYNC_START_DATE``, else the day the first sync recorded in the sync
ledger (30 days before it ran), so that it never slides forward; before any sync, 30 days before
the day the code location loads (``hoop_sessions.plan.first_day``). ``end_offset=0`` makes the last partition yesterday: a day can only be
listed completely once it is over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from dagster import DailyPartitionsDefinition

from hoop_sessions.config import Settings


def daily_partitions(first_day: date) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(
        start_date=first_day.isoformat(), timezone="UTC", end_offset=0, fmt="%Y-%m-%d"
    )


# Without the token: a malformed one must fail the run that uses it (one clear line), not the
# loading of the code location.
hoop_days = daily_partitions(Settings.from_env(api_token=None).first_day())


def day_of(partition_key: str) -> date:
    return date.fromisoformat(partition_key)


def days_of(partition_keys: Sequence[str]) -> list[date]:
    """The days of a run's partition keys, oldest first."""
    return sorted(day_of(key) for key in partition_keys)
