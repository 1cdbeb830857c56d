"""The asset checks find the defects they are written for, on planted faults in a real warehouse."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from dagster import AssetCheckSeverity, AssetKey, AssetSelection, DagsterInstance, materialize

from hoop_sessions.build import schema
from hoop_sessions.simulator import Dataset, SimulatorConfig
from hoop_sessions.sync.ingest import ingest_records
from pipelines.assets import lake_key, warehouse_key
from pipelines.checks import (
    check_reconciled,
    check_records_as_expected,
    check_streams_readable,
    check_unique_key,
    check_yesterday_loaded,
    hoop_checks,
    warehouse_checks,
)
from pipelines.resources import resources_from_env
from tests.pipelines.conftest import NOW, TODAY, days_ago, hoop_assets

DAYS = (days_ago(2), days_ago(1))


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two days as the simulator serves them now, loaded through the library's own path."""
    dataset = Dataset(SimulatorConfig(start=DAYS[0], days=2, sessions_per_day=20, now=NOW))
    records = [
        dataset.record(sid, now=NOW) for day in DAYS for sid in dataset.session_ids(day, now=NOW)
    ]
    data = tmp_path / "data"
    ingest_records(records, data_dir=data, synced_at=NOW)
    monkeypatch.setenv("HOOP_DATA_DIR", str(data))
    monkeypatch.setenv("HOOP_API_URL", "http://127.0.0.1:9")  # never called: raw files exist
    monkeypatch.setenv("HOOP_API_TOKEN", "unused")
    return data


def plant(data_dir: Path, sql: str, *, file: str = "warehouse.duckdb") -> None:
    with duckdb.connect(str(data_dir / file)) as con:
        con.execute(sql)


def evaluate(data_dir: Path) -> dict[str, tuple[bool, AssetCheckSeverity, dict]]:
    result = materialize(
        [*hoop_assets, *hoop_checks],
        selection=AssetSelection.checks(warehouse_checks),
        resources=resources_from_env(),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,  # a failed blocking check fails its step
    )
    return {
        e.asset_check_key.to_user_string(): (e.passed, e.severity, e.metadata)
        for e in result.get_asset_check_evaluations()
    }


def test_every_warehouse_check_passes_on_a_clean_warehouse(data_dir: Path) -> None:
    results = evaluate(data_dir)

    assert len(results) == len(warehouse_checks.check_keys)
    assert {name for name, (passed, *_) in results.items() if not passed} <= {
        "hoop/warehouse/sessions:streams_readable"  # the simulator plants unreadable streams
    }


def test_a_planted_duplicate_session_fails_the_unique_key_check(data_dir: Path) -> None:
    plant(data_dir, "INSERT INTO sessions SELECT * FROM sessions ORDER BY session_id LIMIT 1")

    results = evaluate(data_dir)

    passed, severity, meta = results["hoop/warehouse/sessions:unique_key"]
    assert not passed
    assert severity == AssetCheckSeverity.ERROR
    assert meta["duplicated_keys"].value == 1
    reconciled, *_ = results["hoop/warehouse/sync_windows:listed_equals_loaded_plus_rejected"]
    assert not reconciled  # one session row more than the ledger loaded
    assert results["hoop/warehouse/session_events:unique_key"][0]
    assert results["hoop/warehouse/reviews:unique_key"][0]


def test_a_failed_blocking_check_keeps_the_old_findings(data_dir: Path) -> None:
    """A duplicate on another day: the day's rebuild succeeds, its keys check fails, and the
    findings are not refreshed from a warehouse whose keys are broken."""
    plant(
        data_dir,
        f"INSERT INTO sessions SELECT * FROM sessions WHERE start_day = DATE '{DAYS[0]}' LIMIT 1",
        file=".writer/warehouse.duckdb",  # the copy that loads write and publish
    )
    rebuild = AssetSelection.assets(
        *(lake_key(t.name) for t in schema.DAY_TABLES),
        *(warehouse_key(t.name) for t in schema.DAY_TABLES),
        AssetKey(["hoop", "compliance_findings"]),
    )

    result = materialize(
        [*hoop_assets, *hoop_checks],
        selection=rebuild,
        partition_key=DAYS[1].isoformat(),
        resources=resources_from_env(),
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )

    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert warehouse_key("sessions") in materialized
    assert AssetKey(["hoop", "compliance_findings"]) not in materialized
    failed = {
        e.asset_check_key.to_user_string()
        for e in result.get_asset_check_evaluations()
        if not e.passed
    }
    assert "hoop/warehouse/sessions:unique_key" in failed


def connect(data_dir: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(data_dir / "warehouse.duckdb"))


def test_a_duplicate_event_fails_the_event_key_check(data_dir: Path) -> None:
    plant(data_dir, "INSERT INTO session_events SELECT * FROM session_events LIMIT 1")
    with connect(data_dir) as con:
        result = check_unique_key(con, schema.SESSION_EVENTS, warehouse_key("session_events"))
    assert not result.passed
    assert "session_events" in (result.description or "")


def test_a_day_that_lost_a_session_does_not_reconcile(data_dir: Path) -> None:
    plant(
        data_dir,
        "DELETE FROM sessions WHERE session_id = "
        f"(SELECT min(session_id) FROM sessions WHERE start_day = DATE '{DAYS[1]}')",
    )
    with connect(data_dir) as con:
        scoped = check_reconciled(con, (DAYS[0], DAYS[0]))
        everything = check_reconciled(con, None)
    assert scoped.passed  # the run of the other day sees nothing wrong with its own day
    assert not everything.passed
    assert str(DAYS[1]) in everything.metadata["days_not_reconciled"].value


def test_unreadable_and_truncated_streams_warn(data_dir: Path) -> None:
    plant(data_dir, "UPDATE sessions SET stream_status = 'ok', stream_truncated = false")
    with connect(data_dir) as con:
        assert check_streams_readable(con, None).passed
    plant(
        data_dir,
        "UPDATE sessions SET stream_truncated = true "
        "WHERE session_id = (SELECT min(session_id) FROM sessions)",
    )
    with connect(data_dir) as con:
        result = check_streams_readable(con, None)
    assert not result.passed
    assert result.severity == AssetCheckSeverity.WARN
    assert result.metadata["truncated_streams"].value == 1


def test_unknown_values_and_malformed_fields_warn_with_their_counts(data_dir: Path) -> None:
    with connect(data_dir) as con:
        assert check_records_as_expected(con, None).passed
    plant(
        data_dir,
        "INSERT INTO record_warnings SELECT start_day, session_id, 'review.status', '\"EXPIRED\"', "
        "'unknown_value', 'not known', synced_at FROM sessions ORDER BY session_id LIMIT 2",
    )
    plant(
        data_dir,
        "INSERT INTO record_warnings SELECT start_day, session_id, 'review.revoke_at', '\"soon\"', "
        "'malformed', 'not a time', synced_at FROM sessions ORDER BY session_id LIMIT 1",
    )
    with connect(data_dir) as con:
        result = check_records_as_expected(con, None)
    assert not result.passed
    assert result.severity == AssetCheckSeverity.WARN
    assert result.metadata["unknown_values"].value == 2
    assert result.metadata["malformed_fields"].value == 1
    assert '"EXPIRED"' in result.metadata["by_field"].value


@pytest.mark.parametrize(
    ("today", "passed"),
    [(TODAY, True), (TODAY + timedelta(days=1), False)],
    ids=["on time", "a day late"],
)
def test_yesterday_loaded_tells_whether_the_nightly_sync_ran(
    data_dir: Path, today: date, passed: bool
) -> None:
    with connect(data_dir) as con:
        result = check_yesterday_loaded(con, today)
    assert result.passed is passed
    assert result.metadata["latest_day_loaded"].value == str(DAYS[1])


def test_a_session_the_ledger_could_not_read_fails_the_completeness_check_naming_it(
    data_dir: Path,
) -> None:
    from hoop_sessions.sync.ledger import Ledger, record_read

    failing = "0b9f6a3c-1111-4222-8333-00000000dead"
    record_read(
        Ledger(data_dir),
        DAYS[1],
        gateway_now=NOW,
        stamp=None,
        listed=True,
        read_ids=[],
        listed_ids=[failing],
        failures={failing: "could not be read: HTTP 502"},
        stale=[],
        gone=[],
        gaps=[],
    )

    results = evaluate(data_dir)

    passed, severity, meta = results["hoop/warehouse/sync_windows:sync_complete"]
    assert not passed and severity == AssetCheckSeverity.ERROR
    assert meta["incomplete_items"].value == 1
    [item] = meta["incomplete"].value[str(DAYS[1])]
    assert failing in item and "HTTP 502" in item


def test_yesterday_loaded_is_not_judged_by_a_run_whose_days_end_before_yesterday(
    data_dir: Path,
) -> None:
    with connect(data_dir) as con:
        historical = check_yesterday_loaded(con, TODAY + timedelta(days=5), (DAYS[0], DAYS[1]))
        nightly = check_yesterday_loaded(
            con, TODAY + timedelta(days=5), (DAYS[0], TODAY + timedelta(days=4))
        )
    assert historical.passed and "not in scope" in (historical.description or "")
    assert not nightly.passed
