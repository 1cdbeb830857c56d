"""Days the command line loaded appear in Dagster as materialized partitions (the ledger sensor)."""

from __future__ import annotations

import os

from dagster import build_sensor_context

from hoop_sessions.config import Settings
from hoop_sessions.sync.run import backfill_days, sync_days
from pipelines.assets import RAW_SESSIONS, warehouse_key
from pipelines.resources import WarehouseResource
from tests.pipelines.conftest import Hoop, days_ago, hoop_ledger


def evaluate(hoop: Hoop, cursor: str | None = None):
    context = build_sensor_context(
        instance=hoop.instance,
        cursor=cursor,
        resources={"warehouse": WarehouseResource(data_dir=str(hoop.data_dir))},
    )
    result = hoop_ledger(context)
    for event in result.asset_events:
        hoop.instance.report_runless_asset_event(event)  # what the daemon does with them
    return result


def test_days_the_command_loaded_appear_as_materialized_partitions_once(hoop: Hoop) -> None:
    first, last = days_ago(4), days_ago(2)
    settings = Settings.from_env(dict(os.environ))
    plan = backfill_days(settings, first, last)
    assert sync_days(settings, plan.days, relist=plan.relist).ok

    result = evaluate(hoop)

    expected = {d.isoformat() for d in (days_ago(4), days_ago(3), days_ago(2))}
    for key in (RAW_SESSIONS, warehouse_key("sessions"), warehouse_key("session_events")):
        assert hoop.instance.get_materialized_partitions(key) == expected, key
    again = evaluate(hoop, result.cursor)
    assert again.asset_events == []  # nothing loaded since: nothing reported twice
