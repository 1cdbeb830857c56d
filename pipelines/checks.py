"""Asset checks on the warehouse: keys, reconciliation, streams, records, freshness.

They read ``warehouse.duckdb`` read-only, in the writers' pool so that a check never waits on a
load (DuckDB lets one process write or several read). Checks about days look at the days of the
run they execute in, or at every day when executed on their own. Unknown fields are checked where
they are seen, in the lake build (``assets.lake_tables``).
"""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations.
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import duckdb
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    asset_check,
    multi_asset_check,
)

from hoop_sessions.build import schema
from hoop_sessions.config import Settings
from hoop_sessions.sync.ledger import Ledger
from hoop_sessions.sync.run import incomplete_days
from hoop_sessions.warehouse import checks as queries
from hoop_sessions.warehouse import load as duckdb_warehouse
from hoop_sessions.warehouse.checks import Days
from pipelines.assets import COMPLIANCE_FINDINGS, WAREHOUSE_POOL, warehouse_key
from pipelines.metadata import markdown_table
from pipelines.partitions import days_of
from pipelines.resources import WarehouseResource

UNIQUE_KEY = "unique_key"
RECONCILED = "listed_equals_loaded_plus_rejected"
STREAMS_READABLE = "streams_readable"
YESTERDAY_LOADED = "yesterday_loaded"
SYNC_COMPLETE = "sync_complete"
RECORDS_AS_EXPECTED = "records_as_expected"
SAMPLE_ROWS = 10


def _unique_key_spec(table: schema.Table) -> AssetCheckSpec:
    return AssetCheckSpec(
        UNIQUE_KEY,
        asset=warehouse_key(table.name),
        blocking=True,
        description=f"No two rows of {table.name} share its key ({', '.join(table.key)}).",
    )


WAREHOUSE_CHECKS: list[AssetCheckSpec] = [
    *(_unique_key_spec(t) for t in schema.DAY_TABLES if t.key),
    AssetCheckSpec(
        RECONCILED,
        asset=warehouse_key("sync_windows"),
        blocking=True,
        description="For every day: sessions listed = sessions loaded + sessions rejected, and the "
        "sessions table holds exactly the sessions loaded.",
    ),
    AssetCheckSpec(
        STREAMS_READABLE,
        asset=warehouse_key("sessions"),
        description="No session's event stream was unreadable (hoop could not encode it) or "
        "truncated (hoop stopped recording at 110 MiB). WARN: evidence is incomplete for them.",
    ),
    AssetCheckSpec(
        SYNC_COMPLETE,
        asset=warehouse_key("sync_windows"),
        blocking=True,
        description="The sync ledger has nothing open for the days of the run: every session "
        "listed was read, and every list window was read completely. Fails naming each day, "
        "session and cause (the rest of each day is loaded; the next run tries them again).",
    ),
    AssetCheckSpec(
        RECORDS_AS_EXPECTED,
        asset=warehouse_key("record_warnings"),
        description="Every loaded record held only values this version knows, well formed. WARN: "
        "a value outside its known set was stored as it came, or a malformed sub-field was "
        "stored as null; the sessions are loaded, record_warnings says which and where.",
    ),
    AssetCheckSpec(
        YESTERDAY_LOADED,
        asset=warehouse_key("sync_windows"),
        description="Yesterday (UTC) is loaded: the nightly sync ran.",
    ),
]


def _days_of_run(context: AssetCheckExecutionContext) -> Days:
    if not (context.has_partition_key or context.has_partition_key_range):
        return None
    days = days_of(context.partition_keys)
    return days[0], days[-1]


def _scope(days: Days) -> str:
    return "every day" if days is None else f"{days[0]} .. {days[1]}"


def check_unique_key(
    con: duckdb.DuckDBPyConnection, table: schema.Table, asset_key: AssetKey
) -> AssetCheckResult:
    found = queries.duplicate_keys(con, table, sample_rows=SAMPLE_ROWS)
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=UNIQUE_KEY,
        passed=found.count == 0,
        description=f"{found.count} key value(s) of {table.name} appear more than once"
        if found.count
        else None,
        metadata={
            "duplicated_keys": found.count,
            "sample": MetadataValue.md(markdown_table([*table.key, "copies"], found.sample)),
        },
    )


def check_reconciled(con: duckdb.DuckDBPyConnection, days: Days) -> AssetCheckResult:
    found = queries.reconciliation(con, days)
    bad = found.not_reconciled
    return AssetCheckResult(
        asset_key=warehouse_key("sync_windows"),
        check_name=RECONCILED,
        passed=not bad,
        description=f"{len(bad)} day(s) do not reconcile" if bad else None,
        metadata={
            "days_checked": found.days_checked,
            "scope": _scope(days),
            "days_not_reconciled": MetadataValue.md(
                markdown_table(
                    ["day", "listed", "loaded", "rejected", "rows in sessions"], bad[:SAMPLE_ROWS]
                )
            ),
        },
    )


def check_streams_readable(con: duckdb.DuckDBPyConnection, days: Days) -> AssetCheckResult:
    rows = queries.flawed_streams(con, days)
    unreadable = sum(1 for r in rows if r[2] == "unreadable")
    truncated = sum(1 for r in rows if r[3])
    return AssetCheckResult(
        asset_key=warehouse_key("sessions"),
        check_name=STREAMS_READABLE,
        passed=not rows,
        severity=AssetCheckSeverity.WARN,
        description=f"{unreadable} unreadable and {truncated} truncated stream(s)"
        if rows
        else None,
        metadata={
            "unreadable_streams": unreadable,
            "truncated_streams": truncated,
            "scope": _scope(days),
            "sample": MetadataValue.md(
                markdown_table(
                    ["day", "session_id", "stream_status", "truncated"], rows[:SAMPLE_ROWS]
                )
            ),
        },
    )


def check_records_as_expected(con: duckdb.DuckDBPyConnection, days: Days) -> AssetCheckResult:
    rows = queries.record_warnings_by_field(con, days)
    unknown = sum(r[3] for r in rows if r[0] == "unknown_value")
    malformed = sum(r[3] for r in rows if r[0] == "malformed")
    return AssetCheckResult(
        asset_key=warehouse_key("record_warnings"),
        check_name=RECORDS_AS_EXPECTED,
        passed=not rows,
        severity=AssetCheckSeverity.WARN,
        description=f"{unknown} unknown value(s) stored as sent and {malformed} malformed "
        "field(s) stored as null, counted by session: see record_warnings"
        if rows
        else None,
        metadata={
            "unknown_values": unknown,
            "malformed_fields": malformed,
            "scope": _scope(days),
            "by_field": MetadataValue.md(
                markdown_table(["kind", "field", "value", "sessions"], rows[:SAMPLE_ROWS])
            ),
        },
    )


def check_yesterday_loaded(
    con: duckdb.DuckDBPyConnection, today: date, days: Days = None
) -> AssetCheckResult:
    yesterday = today - timedelta(days=1)
    if days is not None and days[1] < yesterday:
        # A historical backfill: yesterday is not its business; the nightly run judges it.
        return AssetCheckResult(
            asset_key=warehouse_key("sync_windows"),
            check_name=YESTERDAY_LOADED,
            passed=True,
            description=f"not in scope: the run's days end on {days[1]}, before yesterday ({yesterday})",
            metadata={"yesterday": str(yesterday), "scope": _scope(days)},
        )
    latest = queries.latest_day_loaded(con)
    behind = (yesterday - latest).days if latest is not None else None
    return AssetCheckResult(
        asset_key=warehouse_key("sync_windows"),
        check_name=YESTERDAY_LOADED,
        passed=latest is not None and latest >= yesterday,
        description=None
        if latest is not None and latest >= yesterday
        else (f"yesterday ({yesterday}) is not loaded; latest day loaded: {latest or 'none'}"),
        metadata={
            "yesterday": str(yesterday),
            "latest_day_loaded": str(latest),
            "days_behind": behind,
        },
    )


def check_sync_complete(settings: Settings, days: Days) -> AssetCheckResult:
    ledger = Ledger(settings.data_dir)
    known = ledger.days()
    scope = [d for d in known if days is None or days[0] <= d <= days[1]]
    incomplete = incomplete_days(ledger, scope)
    items = [(str(day), item) for day, found in sorted(incomplete.items()) for item in found]
    return AssetCheckResult(
        asset_key=warehouse_key("sync_windows"),
        check_name=SYNC_COMPLETE,
        passed=not items,
        description=(
            f"{len(items)} item(s) in {len(incomplete)} day(s) are incomplete: "
            + "; ".join(f"{day}: {item}" for day, item in items[:SAMPLE_ROWS])
        )
        if items
        else None,
        metadata={
            "days_checked": len(scope),
            "scope": _scope(days),
            "incomplete_items": len(items),
            "incomplete": MetadataValue.json(
                {str(d): found for d, found in sorted(incomplete.items())}
            ),
        },
    )


def _missing_warehouse(key: AssetCheckKey, path: str) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=False,
        description=f"no warehouse at {path}: materialize the hoop assets first",
    )


@multi_asset_check(
    name="hoop_warehouse_checks",
    description="Keys, reconciliation, streams and freshness of the warehouse tables.",
    specs=WAREHOUSE_CHECKS,
    can_subset=True,
    pool=WAREHOUSE_POOL,
)
def warehouse_checks(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> Iterator[AssetCheckResult]:
    settings = warehouse.settings()
    selected = sorted(context.selected_asset_check_keys, key=lambda k: k.to_user_string())
    if not settings.warehouse_path.exists():
        for key in selected:
            yield _missing_warehouse(key, str(settings.warehouse_path))
        return
    days = _days_of_run(context)
    today = datetime.now(UTC).date()
    evaluate: dict[str, Callable[[duckdb.DuckDBPyConnection, AssetCheckKey], AssetCheckResult]] = {
        UNIQUE_KEY: lambda con, key: check_unique_key(
            con, schema.TABLES[key.asset_key.path[-1]], key.asset_key
        ),
        RECONCILED: lambda con, key: check_reconciled(con, days),
        STREAMS_READABLE: lambda con, key: check_streams_readable(con, days),
        YESTERDAY_LOADED: lambda con, key: check_yesterday_loaded(con, today, days),
        SYNC_COMPLETE: lambda con, key: check_sync_complete(settings, days),
        RECORDS_AS_EXPECTED: lambda con, key: check_records_as_expected(con, days),
    }
    with duckdb_warehouse.connect(
        settings.warehouse_path, read_only=True, lock_timeout=settings.lock_timeout_seconds
    ) as con:
        for key in selected:
            yield evaluate[key.name](con, key)


@asset_check(
    asset=COMPLIANCE_FINDINGS,
    name=UNIQUE_KEY,
    description="No rule flags the same session twice (key: rule, session_id).",
    blocking=True,
    pool=WAREHOUSE_POOL,
)
def findings_unique_key(warehouse: WarehouseResource) -> AssetCheckResult:
    settings = warehouse.settings()
    with duckdb_warehouse.connect(
        settings.warehouse_path, read_only=True, lock_timeout=settings.lock_timeout_seconds
    ) as con:
        return check_unique_key(con, schema.COMPLIANCE_FINDINGS, COMPLIANCE_FINDINGS)


hoop_checks = [warehouse_checks, findings_unique_key]
