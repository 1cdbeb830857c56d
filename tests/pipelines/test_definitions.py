"""The code location loads, validates, has exactly the graph, checks, jobs and schedules meant."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from dagster import AssetKey, BackfillPolicy, DefaultScheduleStatus

from pipelines.definitions import defs
from pipelines.resources import HoopApiResource, resources_from_env
from tests.pipelines.conftest import TODAY, hoop_days

REPO = Path(__file__).resolve().parents[2]
TABLES = (
    "sessions",
    "reviews",
    "review_groups",
    "connection_tags",
    "session_events",
    "sync_windows",
    "rejects",
    "record_warnings",
)
KEYED_TABLES = (
    "sessions",
    "reviews",
    "review_groups",
    "connection_tags",
    "session_events",
    "sync_windows",
)


@dataclass(frozen=True)
class Node:
    group: str
    kinds: frozenset[str]
    deps: frozenset[str]
    partitioned: bool
    pools: frozenset[str]


def node(
    group: str,
    kinds: set[str],
    deps: set[str],
    *,
    partitioned: bool = True,
    pools: set[str] = set(),
) -> Node:
    return Node(group, frozenset(kinds), frozenset(deps), partitioned, frozenset(pools))


EXPECTED_ASSETS = {
    "hoop/raw_sessions": node("hoop_ingest", {"python", "json"}, set()),
    **{f"hoop/lake/{t}": node("hoop_lake", {"parquet"}, {"hoop/raw_sessions"}) for t in TABLES},
    **{
        f"hoop/warehouse/{t}": node(
            "hoop_warehouse", {"duckdb"}, {f"hoop/lake/{t}"}, pools={"hoop_warehouse"}
        )
        for t in TABLES
    },
    "hoop/compliance_findings": node(
        "hoop_compliance",
        {"duckdb", "sql"},
        {f"hoop/warehouse/{t}" for t in TABLES},
        partitioned=False,
        pools={"hoop_warehouse"},
    ),
    "hoop/evidence_report": node(
        "hoop_compliance",
        {"html"},
        {"hoop/compliance_findings"},
        partitioned=False,
        pools={"hoop_warehouse"},
    ),
}
# check -> blocking
EXPECTED_CHECKS = {
    **{f"hoop/warehouse/{t}:unique_key": True for t in KEYED_TABLES},
    "hoop/warehouse/sync_windows:listed_equals_loaded_plus_rejected": True,
    "hoop/warehouse/sessions:streams_readable": False,
    "hoop/warehouse/sync_windows:yesterday_loaded": False,
    "hoop/warehouse/sync_windows:sync_complete": True,
    "hoop/warehouse/record_warnings:records_as_expected": False,
    "hoop/lake/sessions:no_unknown_fields": False,
    "hoop/compliance_findings:unique_key": True,
}


def test_the_workspace_file_loads_and_validates_without_any_hoop_setting() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOP_", "DAGSTER_HOME"))}
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Validation successful for code location hoop_sessions" in output


def test_the_asset_graph_is_raw_then_lake_then_warehouse_then_findings_then_report() -> None:
    graph = defs.resolve_asset_graph()
    actual = {}
    for key in graph.get_all_asset_keys():
        asset = graph.get(key)
        actual[key.to_user_string()] = node(
            asset.group_name,
            set(asset.kinds),
            {p.to_user_string() for p in asset.parent_keys},
            partitioned=asset.partitions_def is not None,
            pools=set(asset.pools or ()),
        )
    assert actual == EXPECTED_ASSETS


def test_every_asset_has_a_description_and_owners() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).description, key
        assert graph.get(key).owners, key


def test_the_checks_are_keys_reconciliation_completeness_streams_freshness_and_unknown_fields() -> (
    None
):
    graph = defs.resolve_asset_graph()
    actual = {
        key.to_user_string(): graph.get_check_spec(key).blocking for key in graph.asset_check_keys
    }
    assert actual == EXPECTED_CHECKS


def test_partitions_are_closed_utc_days_from_thirty_days_ago_with_single_run_backfills() -> None:
    assert hoop_days.timezone == "UTC"
    assert hoop_days.end_offset == 0
    assert hoop_days.get_first_partition_key() == (TODAY - timedelta(days=30)).isoformat()
    assert hoop_days.get_last_partition_key() == (TODAY - timedelta(days=1)).isoformat()
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        asset = graph.get(key)
        if asset.partitions_def is not None:
            assert asset.partitions_def == hoop_days, key
            assert asset.backfill_policy == BackfillPolicy.single_run(), key


def test_the_jobs_and_the_nightly_schedule() -> None:
    jobs = {job.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}
    assert jobs == {"hoop_sync"}
    sync = defs.resolve_job_def("hoop_sync")
    assert sync.partitions_def == hoop_days
    assert {k.to_user_string() for k in sync.asset_layer.selected_asset_keys} == set(
        EXPECTED_ASSETS
    )
    schedules = {s.name: s for s in defs.get_repository_def().schedule_defs}
    assert set(schedules) == {"hoop_nightly"}
    nightly = schedules["hoop_nightly"]
    assert (nightly.cron_schedule, nightly.execution_timezone) == ("15 1 * * *", "UTC")
    assert nightly.default_status == DefaultScheduleStatus.STOPPED
    assert nightly.job_name == "hoop_sync"


def test_the_token_is_read_from_the_environment_at_run_time_never_bound_to_a_value() -> None:
    api = resources_from_env()["hoop_api"]
    assert isinstance(api, HoopApiResource)
    assert api.token is None and api.url is None
    assert AssetKey(["hoop", "raw_sessions"]) in defs.resolve_asset_graph().get_all_asset_keys()


def test_the_library_imports_without_dagster() -> None:
    modules = [
        "hoop_sessions.sync.run",
        "hoop_sessions.build.day",
        "hoop_sessions.warehouse.load",
        "hoop_sessions.extract.day",
        "hoop_sessions.build.lake",
        "hoop_sessions.extract.raw",
        "hoop_sessions.extract.client",
        "hoop_sessions.compliance.rules",
        "hoop_sessions.warehouse.checks",
        "hoop_sessions.warehouse.summaries",
        "hoop_sessions.cli.main",
        "hoop_sessions.cli.devserver",
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_only_the_definitions_read_the_environment_when_pipelines_is_imported() -> None:
    """Every other module imports with a malformed start date and backfill policy in the
    environment; building the definitions is where they are read, and rejected."""
    modules = [
        "pipelines.assets",
        "pipelines.checks",
        "pipelines.jobs",
        "pipelines.metadata",
        "pipelines.partitions",
        "pipelines.resources",
        "pipelines.schedules",
        "pipelines.sensors",
    ]
    code = (
        "import importlib\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print('imported')\n"
        "import pipelines.definitions\n"
    )
    env = {
        **os.environ,
        "HOOP_SYNC_START_DATE": "not-a-date",
        "HOOP_BACKFILL_DAYS_PER_RUN": "many",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO, env=env
    )
    assert done.stdout.strip() == "imported", done.stderr
    assert done.returncode != 0
    assert "HOOP_SYNC_START_DATE" in done.stderr
