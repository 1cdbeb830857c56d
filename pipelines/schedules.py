"""The nightly schedule: every day the sync plan says is not done (never read completely, recent,
or holding sessions that may change: ``hoop_sessions.sync.run.nightly_days``), in one run per tick.

Run keys ``nightly-<tick date>`` make a tick idempotent: evaluating the same tick twice
(daemon restart, failure recovery) launches nothing new. The schedule is STOPPED by default: turn
it on in the UI (Automation) or with ``dagster schedule start hoop_nightly -w workspace.yaml``.
"""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations.
from datetime import UTC, date, datetime, timedelta

from dagster import (
    AssetCheckKey,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from hoop_sessions.config import Settings
from hoop_sessions.sync.run import nightly_days
from pipelines.assets import LAKE_CHECK_SPECS
from pipelines.checks import YESTERDAY_LOADED, hoop_checks
from pipelines.jobs import hoop_sync_job
from pipelines.resources import WarehouseResource

NIGHTLY_CRON = "15 1 * * *"

CHECK_KEYS: tuple[AssetCheckKey, ...] = tuple(
    sorted(
        {key for checks in hoop_checks for key in checks.check_keys}
        | {spec.key for spec in LAKE_CHECK_SPECS},
        key=lambda k: k.to_user_string(),
    )
)


def days_to_sync(
    context: ScheduleEvaluationContext, settings: Settings, now: datetime, *, first: date
) -> list[date]:
    """The library's nightly plan (``hoop_sessions.sync.run.nightly_days``) within the partitions."""
    plan = nightly_days(settings, now=now)
    for day, why in sorted(plan.left.items()):
        context.log.warning(f"{day}: left by HOOP_FINAL_HORIZON_DAYS: {why}")
    return [d for d in plan.days if d >= first]


def nightly_run_request(today: date, days: list[date]) -> RunRequest:
    """One run for the whole tick: one preflight and one pool of HOOP_CONCURRENCY connections
    for every day (a run per day would multiply the load on the gateway). The days in the range
    that are done are skipped by the assets' own plan."""
    yesterday = today - timedelta(days=1)
    # "Yesterday is loaded" is judged only by a run whose range holds yesterday.
    checks = [k for k in CHECK_KEYS if max(days) == yesterday or k.name != YESTERDAY_LOADED]
    return RunRequest(
        run_key=f"nightly-{today.isoformat()}",
        asset_check_keys=checks,
        tags={
            "hoop/trigger": "nightly",
            "hoop/nightly_of": today.isoformat(),
            ASSET_PARTITION_RANGE_START_TAG: min(days).isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: max(days).isoformat(),
        },
    )


def nightly_requests(
    context: ScheduleEvaluationContext,
    warehouse: WarehouseResource,
    partitions: DailyPartitionsDefinition,
) -> list[RunRequest] | SkipReason:
    now = context.scheduled_execution_time.astimezone(UTC)
    today = now.date()
    first = partitions.start.date()
    days = days_to_sync(context, warehouse.settings(), now, first=first)
    if not days:
        return SkipReason(f"no day to sync for {today}: partitions start on {first}")
    context.log.info(f"nightly of {today}: {', '.join(str(d) for d in days)}")
    return [nightly_run_request(today, days)]


def build_nightly(partitions: DailyPartitionsDefinition) -> ScheduleDefinition:
    """The ``hoop_nightly`` schedule over the partitions the code location built."""

    @schedule(
        name="hoop_nightly",
        cron_schedule=NIGHTLY_CRON,
        execution_timezone="UTC",
        job=hoop_sync_job,
        default_status=DefaultScheduleStatus.STOPPED,
        description="Every night at 01:15 UTC: sync yesterday, re-read the last days and every day "
        "that still holds a session that may change or was never read completely, in one run.",
    )
    def hoop_nightly(
        context: ScheduleEvaluationContext, warehouse: WarehouseResource
    ) -> list[RunRequest] | SkipReason:
        return nightly_requests(context, warehouse, partitions)

    return hoop_nightly
