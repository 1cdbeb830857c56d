"""The asset graph: hoop → raw responses → lake tables → warehouse tables → findings → report.

Every partitioned asset is one daily UTC partition per day and takes a whole partition range in
one run (``BackfillPolicy.single_run()``: one preflight, one HTTP connection pool and one DuckDB
writer for a backfill). ``HOOP_BACKFILL_DAYS_PER_RUN`` replaces that policy on every partitioned
asset where the definitions are built, to cut a backfill into runs of N days. A run of one
partition always does its day again (the nightly schedule and "Materialize" of a day). A run over
a range resumes: each stage skips the days whose output already matches its input (see
``hoop_sessions.sync.stages``), so re-running a failed 90-day backfill reads only the days that were
not read, and loads only the days that were not loaded.

Each asset only translates: partitions into days, resources into ``Settings``, library results
into metadata. The work is the library's: ``extract_day``, ``build_and_record``, ``load_and_record``,
``refresh_findings``, ``write_report``, and the queries of ``hoop_sessions.warehouse.checks``. The daily
assets are built by ``build_assets`` over the partitions the code location builds when it loads.
"""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations.
import asyncio
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import date
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    Config,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pydantic import Field

from hoop_sessions.build import schema
from hoop_sessions.compliance.report import write_report
from hoop_sessions.compliance.rules import refresh_findings
from hoop_sessions.config import Settings
from hoop_sessions.errors import HoopSessionsError
from hoop_sessions.extract.raw import raw_path
from hoop_sessions.lock import writer_lock
from hoop_sessions.progress import LogProgress
from hoop_sessions.sync import mirror
from hoop_sessions.sync import run as sync
from hoop_sessions.sync.day import build_and_record, load_and_record
from hoop_sessions.sync.stages import Plan, plan_build, plan_load, plan_read
from hoop_sessions.warehouse import load as duckdb_warehouse
from hoop_sessions.warehouse import snapshot, summaries
from pipelines import metadata
from pipelines.partitions import days_of
from pipelines.resources import HoopApiResource, WarehouseResource

# One writer at a time: every step that writes (or reads) warehouse.duckdb runs in this pool,
# limit 1, across runs. Reading hoop and building the lake stay outside it, so that runs of
# different days read and write Parquet side by side; the chain of day manifests that a build
# re-links has its own lock (hoop_sessions.warehouse.manifest.record_day).
WAREHOUSE_POOL = "hoop_warehouse"

RAW_SESSIONS = AssetKey(["hoop", "raw_sessions"])
COMPLIANCE_FINDINGS = AssetKey(["hoop", "compliance_findings"])
EVIDENCE_REPORT = AssetKey(["hoop", "evidence_report"])
DATA_OWNERS = ["team:data-platform"]
COMPLIANCE_OWNERS = ["team:compliance"]
UNKNOWN_FIELDS_CHECK = "no_unknown_fields"


def lake_key(table: str) -> AssetKey:
    return AssetKey(["hoop", "lake", table])


def warehouse_key(table: str) -> AssetKey:
    return AssetKey(["hoop", "warehouse", table])


class DayRangeConfig(Config):
    redo: bool = Field(
        default=False,
        description="In a run over several days, do again the days that are already done "
        "(a run of one day always does it again).",
    )


def _plan(
    context: AssetExecutionContext,
    config: DayRangeConfig,
    make: Callable[..., Plan],
    settings: Settings,
    what: str,
) -> tuple[list[date], Plan]:
    days = days_of(context.partition_keys)
    plan = make(settings, days, redo=config.redo or len(days) == 1)
    context.log.info(
        f"{what}: {len(plan.todo)} of {len(days)} day(s) to do, {len(plan.skipped)} already done, "
        f"{len(plan.missing)} missing their input"
    )
    for day, why in plan.skipped.items():
        context.log.debug(f"{day}: skipped, {why}")
    return days, plan


def _fail_if(failed: dict[date, str], *, what: str, done: int) -> None:
    """After the other days are done: fail the run, naming each failed day and why."""
    if not failed:
        return
    lines = "\n".join(f"- {day}: {why}" for day, why in sorted(failed.items()))
    raise Failure(
        description=f"{what} failed for {len(failed)} day(s) ({done} other day(s) done and kept). "
        "Run the same partitions again: days already done are skipped.\n" + lines,
        metadata={
            "failed_days": MetadataValue.json({str(d): why for d, why in sorted(failed.items())})
        },
    )


def _writing(settings: Settings, what: str) -> AbstractContextManager[None]:
    """The data directory's writer lock, per day: a command-line run on the same data directory
    takes turns with this run's steps."""
    return writer_lock(settings.data_dir, what=what, timeout=settings.lock_timeout_seconds)


def _published(context: AssetExecutionContext, result: snapshot.PublishResult | None) -> None:
    if result is not None:
        context.log.info(
            f"published {result.path}: {result.bytes / 2**20:.1f} MiB in {result.seconds:.2f} s"
        )


def _outcome(day: date, plan: Plan) -> str:
    return "skipped: " + plan.skipped[day] if day in plan.skipped else "done"


def _run_summary(days: Sequence[date], plan: Plan) -> dict[str, Any]:
    return {
        "days_done": len(plan.todo),
        "days_skipped": len(plan.skipped),
        "days_in_run": len(days),
    }


def raw_sessions(
    context: AssetExecutionContext,
    config: DayRangeConfig,
    hoop_api: HoopApiResource,
    warehouse: WarehouseResource,
) -> MaterializeResult[None]:
    try:
        settings = hoop_api.apply(warehouse.settings())
    except HoopSessionsError as exc:
        raise Failure(description=str(exc)) from None
    days, plan = _plan(context, config, plan_read, settings, "read hoop")
    settings.ensure_data_dir()
    progress = LogProgress(len(plan.todo), logger=context.log)
    try:
        _, failed = (
            asyncio.run(
                sync.extract_days_async(
                    settings, plan.todo, progress=progress, reuse=not config.redo
                )
            )
            if plan.todo
            else ({}, {})
        )
    except HoopSessionsError as exc:
        raise Failure(description=str(exc)) from None
    _fail_if(failed, what="reading hoop", done=len(plan.todo) - len(failed))
    for day in days:
        # A day skipped as loaded and final may have no raw file here (synced on another machine).
        details = (
            metadata.raw_day(settings, day) if raw_path(settings.raw_dir, day).exists() else {}
        )
        context.add_asset_metadata(
            {**details, "outcome": _outcome(day, plan)}, partition_key=day.isoformat()
        )
    return MaterializeResult(metadata=_run_summary(days, plan))


def lake_tables(
    context: AssetExecutionContext, config: DayRangeConfig, warehouse: WarehouseResource
) -> Iterator[MaterializeResult[None] | AssetCheckResult]:
    settings = warehouse.settings()
    days, plan = _plan(context, config, plan_build, settings, "build the lake")
    failed = dict(plan.missing)
    unknown: Counter[str] = Counter()
    for day in plan.todo:
        try:
            with _writing(settings, f"lake build of {day}"):
                built = build_and_record(settings, day)
                # With an object store: for the load, in whatever worker runs it.
                mirror.publish_files(settings, day)
        except HoopSessionsError as exc:
            failed[day] = str(exc)
            continue
        unknown.update(built.unknown_fields)
        context.log.info(
            f"{day}: {built.sessions_loaded} sessions flattened, {built.sessions_rejected} rejected"
        )
    _fail_if(
        failed, what="building the lake", done=len(plan.todo) - len(set(failed) - set(plan.missing))
    )
    for table in schema.DAY_TABLES:
        for day in days:
            context.add_asset_metadata(
                {
                    **metadata.lake_table_day(settings, table.name, day),
                    "outcome": _outcome(day, plan),
                },
                asset_key=lake_key(table.name),
                partition_key=day.isoformat(),
            )
        yield MaterializeResult(asset_key=lake_key(table.name), metadata=_run_summary(days, plan))
    yield AssetCheckResult(
        asset_key=lake_key("sessions"),
        check_name=UNKNOWN_FIELDS_CHECK,
        passed=not unknown,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"hoop sent {len(unknown)} field(s) this version does not know; kept in the raw files"
            if unknown
            else f"no unknown field in the {len(plan.todo)} day(s) built"
        ),
        metadata={
            "unknown_fields": MetadataValue.json(dict(unknown)),
            "days_built": len(plan.todo),
        },
    )


def warehouse_tables(
    context: AssetExecutionContext, config: DayRangeConfig, warehouse: WarehouseResource
) -> Iterator[MaterializeResult[None]]:
    settings = warehouse.settings()
    days, plan = _plan(context, config, plan_load, settings, "load the warehouse")
    failed = dict(plan.missing)
    try:
        for day in plan.todo:
            try:
                with _writing(settings, f"load of {day}"):
                    rows = load_and_record(settings, day)
                    mirror.push_day_records(settings, day)
            except HoopSessionsError as exc:
                failed[day] = str(exc)
                continue
            context.log.info(f"{day}: loaded " + ", ".join(f"{n} {t}" for t, n in rows.items()))
        _fail_if(
            failed,
            what="loading the warehouse",
            done=len(plan.todo) - len(set(failed) - set(plan.missing)),
        )
        sync.refresh_ledger_tables(settings)
    except BaseException:
        sync.publish_warehouse(settings, days)  # the days loaded before the failure stand
        raise
    # With an object store, the days' ledger follows the warehouse that holds them.
    _published(context, sync.publish_warehouse(settings, days))
    # What analysts read now: the published file.
    with duckdb_warehouse.connect(
        settings.warehouse_path, read_only=True, lock_timeout=settings.lock_timeout_seconds
    ) as con:
        for table in schema.DAY_TABLES:
            for day in days:
                context.add_asset_metadata(
                    {
                        **metadata.warehouse_table_day(
                            con, table.name, day, settings.warehouse_path
                        ),
                        "outcome": _outcome(day, plan),
                    },
                    asset_key=warehouse_key(table.name),
                    partition_key=day.isoformat(),
                )
    for table in schema.DAY_TABLES:
        yield MaterializeResult(
            asset_key=warehouse_key(table.name), metadata=_run_summary(days, plan)
        )


@multi_asset(
    name="hoop__compliance_findings",
    specs=[
        AssetSpec(
            COMPLIANCE_FINDINGS,
            description="What every compliance rule (sql/compliance/*.sql, kind: finding) flags "
            "now: one row per (rule, session), replaced as a whole after each load.",
            deps=[warehouse_key(table.name) for table in schema.DAY_TABLES],
            group_name="hoop_compliance",
            kinds={"duckdb", "sql"},
            owners=COMPLIANCE_OWNERS,
            metadata={
                "dagster/column_schema": metadata.column_schema(schema.COMPLIANCE_FINDINGS),
                "dagster/table_name": "warehouse.main.compliance_findings",
            },
        )
    ],
    # Unpartitioned, so it runs once per backfill anyway; declared so that
    # `dagster asset materialize --partition-range` accepts a selection that includes it.
    backfill_policy=BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
)
def compliance_findings(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> MaterializeResult[None]:
    settings = warehouse.settings()
    columns = metadata.PREVIEW_COLUMNS["compliance_findings"]
    with snapshot.connect_writer(settings) as con:
        duckdb_warehouse.ensure_schema(con)
        refresh = refresh_findings(con)
        summary = summaries.findings_summary(con, columns=columns, preview_rows=10)
    context.log.info(f"{refresh.total} finding(s) from {len(refresh.counts)} rule(s)")
    _published(context, sync.publish_warehouse(settings))
    return MaterializeResult(
        metadata={
            "dagster/row_count": refresh.total,
            "findings_by_rule": MetadataValue.json(dict(refresh.counts)),
            "findings_by_severity": MetadataValue.json(summary.by_severity),
            "found_at": refresh.found_at.isoformat(),
            "preview": MetadataValue.md(metadata.markdown_table(columns, summary.preview)),
            "path": MetadataValue.path(str(settings.warehouse_path)),
        }
    )


class EvidenceReportConfig(Config):
    start: str | None = Field(
        default=None,
        description="First UTC day of the audit period, YYYY-MM-DD; unset: the first loaded.",
    )
    end: str | None = Field(
        default=None, description="Last UTC day (inclusive), YYYY-MM-DD; unset: the last loaded."
    )


@multi_asset(
    name="hoop__evidence_report",
    specs=[
        AssetSpec(
            EVIDENCE_REPORT,
            description="The compliance evidence report: one self-contained HTML file (coverage "
            "of the period, the sync ledger, every rule's findings with charts), in "
            "<data dir>/reports/.",
            deps=[COMPLIANCE_FINDINGS],
            group_name="hoop_compliance",
            kinds={"html"},
            owners=COMPLIANCE_OWNERS,
        )
    ],
    backfill_policy=BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
)
def evidence_report(
    context: AssetExecutionContext, config: EvidenceReportConfig, warehouse: WarehouseResource
) -> MaterializeResult[None]:
    settings = warehouse.settings()
    out = settings.data_dir / "reports" / "evidence.html"
    try:
        start = date.fromisoformat(config.start) if config.start else None
        end = date.fromisoformat(config.end) if config.end else None
    except ValueError as exc:
        raise Failure(description=f"start and end are dates YYYY-MM-DD: {exc}") from None
    with duckdb_warehouse.connect(
        settings.warehouse_path, read_only=True, lock_timeout=settings.lock_timeout_seconds
    ) as con:
        try:
            data = write_report(con, out=out, start=start, end=end)
        except HoopSessionsError as exc:
            raise Failure(description=str(exc)) from None
    findings = sum(len(r.rows) for r in data.findings)
    context.log.info(f"wrote {out}: {data.start} to {data.end}, {findings} finding(s)")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(out)),
            "period": f"{data.start} .. {data.end}",
            "findings": findings,
            "rules": len(data.results),
            "days_covered": sum(1 for d in data.days if d.synced),
            "days_not_reconciled": MetadataValue.json(
                [str(d.day) for d in data.days if d.synced and not d.reconciled]
            ),
        }
    )


RAW_SPECS = [
    AssetSpec(
        RAW_SESSIONS,
        description="Every session of a UTC day as hoop's GET /api/sessions/{id} returned it "
        "(event stream and input included), kept as received in "
        "raw/start_day=<day>/sessions.ndjson.gz with the record of how it was listed. The lake "
        "can be rebuilt from it without calling hoop.",
        group_name="hoop_ingest",
        kinds={"python", "json"},
        owners=DATA_OWNERS,
        tags={"source": "hoop"},
    )
]
LAKE_SPECS = [
    AssetSpec(
        lake_key(table.name),
        deps=[RAW_SESSIONS],
        description=f"{table.description} Parquet, lake/{table.name}/start_day=<day>/, "
        "replaced per day.",
        group_name="hoop_lake",
        kinds={"parquet"},
        owners=DATA_OWNERS,
        metadata={"dagster/column_schema": metadata.column_schema(table)},
    )
    for table in schema.DAY_TABLES
]
LAKE_CHECK_SPECS = [
    AssetCheckSpec(
        UNKNOWN_FIELDS_CHECK,
        asset=lake_key("sessions"),
        description="hoop sent no field this version does not know (they are kept in the raw "
        "file only). WARN: the gateway grew a field worth adding to the contract.",
    )
]
WAREHOUSE_SPECS = [
    AssetSpec(
        warehouse_key(table.name),
        deps=[lake_key(table.name)],
        description=f"{table.description} DuckDB table {table.name}, replaced per day.",
        group_name="hoop_warehouse",
        kinds={"duckdb"},
        owners=DATA_OWNERS,
        metadata={
            "dagster/column_schema": metadata.column_schema(table),
            "dagster/table_name": f"warehouse.main.{table.name}",
            "key": ", ".join(table.key) or "(none)",
        },
    )
    for table in schema.DAY_TABLES
]


def build_assets(days: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    """The asset graph over the daily partitions ``days``, which the code location builds when it
    loads (their first day comes from the environment and the sync ledger)."""
    # Multi-assets even of one spec: `@asset`'s backfill_policy parameter is in beta (a warning at
    # every load of the code location), multi_asset's is not, and single-run backfills need it.
    one_run = BackfillPolicy.single_run()
    return [
        multi_asset(
            name="hoop__raw_sessions",
            specs=RAW_SPECS,
            partitions_def=days,
            backfill_policy=one_run,
        )(raw_sessions),
        multi_asset(
            name="hoop_lake_tables",
            description="Flatten each day's raw file into the Parquet tables of the data contract.",
            specs=LAKE_SPECS,
            check_specs=LAKE_CHECK_SPECS,
            partitions_def=days,
            backfill_policy=one_run,
            can_subset=False,
        )(lake_tables),
        multi_asset(
            name="hoop_warehouse_tables",
            description="Load each day's lake files into warehouse.duckdb, one transaction per "
            "day.",
            specs=WAREHOUSE_SPECS,
            pool=WAREHOUSE_POOL,
            partitions_def=days,
            backfill_policy=one_run,
            can_subset=False,
        )(warehouse_tables),
        compliance_findings,
        evidence_report,
    ]
