"""One truth for both front doors: days the command line loaded appear in Dagster as materialized.

``hoop-sessions backfill`` and ``sync`` write the same data directory as the Dagster assets, and
record every load in the sync ledger. This sensor reads the ledger and reports each day loaded
since it last looked as a runless materialization of the day's partitions (raw, lake and
warehouse assets), so the UI's partitions show what the warehouse holds whichever door loaded it.
Its cursor keeps the loaded stamp it reported for each day: a day is reported again only when a
later load replaced it. Days that a Dagster run loaded are reported too (their materialization
then appears twice, once from the run and once from the ledger, with the same stamp).
"""

# No `from __future__ import annotations`: Dagster reads the resource annotations.
import json
from datetime import date

from dagster import (
    AssetMaterialization,
    DailyPartitionsDefinition,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from hoop_sessions.build import schema
from hoop_sessions.sync.ledger import Ledger
from pipelines.assets import RAW_SESSIONS, lake_key, warehouse_key
from pipelines.resources import WarehouseResource

# Days reported by one evaluation, at most: the next evaluation goes on from there.
DAYS_PER_EVALUATION = 400
DAY_ASSETS = [
    RAW_SESSIONS,
    *(lake_key(t.name) for t in schema.DAY_TABLES),
    *(warehouse_key(t.name) for t in schema.DAY_TABLES),
]


def report_ledger(
    context: SensorEvaluationContext,
    warehouse: WarehouseResource,
    partitions: DailyPartitionsDefinition,
) -> SensorResult:
    """The days loaded since the cursor, within the partitions, as runless materializations."""
    ledger = Ledger(warehouse.settings().data_dir)
    # Per day: [the loaded stamp reported, the ledger file's mtime when last read].
    reported: dict[str, list[object]] = json.loads(context.cursor) if context.cursor else {}
    first = partitions.start.date()
    last = date.fromisoformat(partitions.get_last_partition_key() or first.isoformat())
    events: list[AssetMaterialization] = []
    days = 0
    for day in ledger.days():
        key = day.isoformat()
        try:
            mtime = ledger.path(day).stat().st_mtime_ns
        except FileNotFoundError:
            continue
        seen = reported.get(key)
        if not first <= day <= last or (seen is not None and seen[1] == mtime):
            continue  # a ledger file unchanged since it was read is not parsed again
        entry = ledger.get(day)
        if (
            entry is None
            or not entry.loaded
            or (seen is not None and seen[0] == entry.loaded_stamp)
        ):
            if entry is not None and seen is not None:
                seen[1] = mtime
            continue
        stamp = entry.loaded_stamp or ""
        events.extend(
            AssetMaterialization(
                asset_key=asset,
                partition=key,
                description="loaded by hoop-sessions (reported from the sync ledger)",
                metadata={"loaded_stamp": stamp, "source": "sync ledger"},
            )
            for asset in DAY_ASSETS
        )
        reported[key] = [stamp, mtime]
        days += 1
        if days >= DAYS_PER_EVALUATION:
            break
    if days:
        context.log.info(f"{days} day(s) loaded outside Dagster reported as materialized")
    return SensorResult(asset_events=events, cursor=json.dumps(reported, sort_keys=True))


def build_ledger_sensor(partitions: DailyPartitionsDefinition) -> SensorDefinition:
    """The ``hoop_ledger`` sensor over the partitions the code location built."""

    @sensor(
        name="hoop_ledger",
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description="Reports the days the hoop-sessions command loaded (from the sync ledger) as "
        "materialized partitions, so Dagster and the command line agree on what the warehouse "
        "holds.",
    )
    def hoop_ledger(context: SensorEvaluationContext, warehouse: WarehouseResource) -> SensorResult:
        return report_ledger(context, warehouse, partitions)

    return hoop_ledger
