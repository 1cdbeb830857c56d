"""The nightly schedule: yesterday, the recent rolling window, and days still holding sessions
that may change (``hoop_sessions.sync.nightly_days``), one run per day.

Run keys ``nightly-<tick date>-<day>`` make a tick idempotent: evaluating the same tick twice
(daemon restart, failure recovery) launches nothing new. The schedule is STOPPED by default: turn
it on in the UI (Automation) or with ``dagster schedule start hoop_nightly -w workspace.yaml``.
"""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations.
from dataclasses import replace
from datetime import UTC, date, timedelta

from dagster import (
    AssetCheckKey,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from hoop_sessions.config import Settings
from hoop_sessions.errors import WarehouseLockedError
from hoop_sessions.sync import nightly_days
from pipelines.assets import lake_tables
from pipelines.checks import YESTERDAY_LOADED, hoop_checks
from pipelines.jobs import hoop_sync_job
from pipelines.partitions import hoop_days
from pipelines.resources import WarehouseResource

NIGHTLY_CRON = "15 1 * * *"
# A schedule tick must answer within Dagster's evaluation timeout: do not wait long for a load.
TICK_LOCK_TIMEOUT_SECONDS = 20.0

CHECK_KEYS: tuple[AssetCheckKey, ...] = tuple(
    sorted(
        {key for checks in hoop_checks for key in checks.check_keys} | set(lake_tables.check_keys),
        key=lambda k: k.to_user_string(),
    )
)


def days_to_sync(context: ScheduleEvaluationContext, settings: Settings, today: date) -> list[date]:
    """``nightly_days``; if a load holds the warehouse, yesterday and the rolling window only."""
    try:
        days = nightly_days(
            replace(
                settings,
                lock_timeout_seconds=min(settings.lock_timeout_seconds, TICK_LOCK_TIMEOUT_SECONDS),
            ),
            today=today,
        )
    except WarehouseLockedError as exc:
        context.log.warning(
            f"{exc}; scheduling yesterday and the rolling window only, days still open are "
            "picked up by the next night"
        )
        days = nightly_days(settings, today=today, has_warehouse=False)
    first = hoop_days.start.date()
    return [d for d in days if d >= first]


def nightly_run_request(today: date, day: date) -> RunRequest:
    yesterday = today - timedelta(days=1)
    # "Yesterday is loaded" would fail in the runs that finish before yesterday's: check it there.
    checks = [k for k in CHECK_KEYS if day == yesterday or k.name != YESTERDAY_LOADED]
    return RunRequest(
        run_key=f"nightly-{today.isoformat()}-{day.isoformat()}",
        partition_key=day.isoformat(),
        asset_check_keys=checks,
        tags={"hoop/trigger": "nightly", "hoop/nightly_of": today.isoformat()},
    )


@schedule(
    name="hoop_nightly",
    cron_schedule=NIGHTLY_CRON,
    execution_timezone="UTC",
    job=hoop_sync_job,
    default_status=DefaultScheduleStatus.STOPPED,
    description="Every night at 01:15 UTC: sync yesterday, re-read the last days and every day "
    "within the horizon that still holds a session that may change, one run per day.",
)
def hoop_nightly(
    context: ScheduleEvaluationContext, warehouse: WarehouseResource
) -> list[RunRequest] | SkipReason:
    today = context.scheduled_execution_time.astimezone(UTC).date()
    days = days_to_sync(context, warehouse.settings(), today)
    if not days:
        return SkipReason(
            f"no day to sync for {today}: partitions start on {hoop_days.start.date()}"
        )
    context.log.info(f"nightly of {today}: {', '.join(str(d) for d in days)}")
    return [nightly_run_request(today, day) for day in days]
