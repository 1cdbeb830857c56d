"""The assets against the simulator on loopback: real HTTP, real Parquet and DuckDB files."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, serialize_value

from hoop_sessions.simulator import Dataset
from tests.pipelines.conftest import Hoop, HoopFactory, days_ago

WAREHOUSE_SESSIONS = AssetKey(["hoop", "warehouse", "sessions"])


def loaded_and_rejected(hoop: Hoop, day: object) -> tuple[set[str], set[str]]:
    loaded = {r[0] for r in hoop.query("SELECT session_id FROM sessions WHERE start_day = ?", day)}
    rejected = {
        r[0]
        for r in hoop.query(
            "SELECT session_id FROM rejects WHERE start_day = ? AND stage <> 'stream' "
            "AND session_id IS NOT NULL",
            day,
        )
    }
    return loaded, rejected


def test_a_materialized_day_holds_exactly_the_sessions_the_gateway_serves(hoop: Hoop) -> None:
    day = days_ago(2)

    result = hoop.materialize(day.isoformat())

    assert result.success
    loaded, rejected = loaded_and_rejected(hoop, day)
    assert loaded | rejected == hoop.truth(day)
    assert not loaded & rejected
    dataset = Dataset(hoop.config)
    for session_id, status, review_status in hoop.query(
        "SELECT session_id, status, review_status FROM sessions WHERE start_day = ?", day
    ):
        record = dataset.record(session_id, now=hoop.gateway.now)
        assert status == record["status"]
        assert review_status == ((record.get("review") or {}).get("status"))
    assert hoop.query("SELECT DISTINCT start_day FROM sync_windows") == [(day,)]


def test_every_materialization_carries_row_counts_statuses_requests_previews_and_paths(
    hoop: Hoop,
) -> None:
    day = days_ago(1)

    result = hoop.materialize(day.isoformat())

    assert result.success
    by_key = {m.asset_key: m for m in result.get_asset_materialization_events()}
    raw = by_key[AssetKey(["hoop", "raw_sessions"])].materialization.metadata
    assert raw["dagster/row_count"].value == len(hoop.truth(day)) - raw["sessions_rejected"].value
    assert raw["requests"].value >= raw["dagster/row_count"].value
    assert "retries" in raw
    assert Path(raw["path"].value).is_file()
    assert "| window_start |" in raw["preview"].value
    sessions = by_key[WAREHOUSE_SESSIONS].materialization
    assert sessions.partition == day.isoformat()
    assert sessions.metadata["dagster/row_count"].value == len(loaded_and_rejected(hoop, day)[0])
    assert (
        sum(sessions.metadata["sessions_by_status"].value.values())
        == sessions.metadata["dagster/row_count"].value
    )
    assert "| session_id |" in sessions.metadata["preview"].value
    lake_events = by_key[AssetKey(["hoop", "lake", "session_events"])].materialization.metadata
    assert (
        "payload_text" not in lake_events["preview"].value
    )  # session contents stay out of Dagster
    findings = by_key[AssetKey(["hoop", "compliance_findings"])].materialization.metadata
    assert (
        findings["dagster/row_count"].value
        == hoop.query("SELECT count(*) FROM compliance_findings")[0][0]
    )
    report = by_key[AssetKey(["hoop", "evidence_report"])].materialization.metadata
    assert report["period"].value == f"{day} .. {day}"
    assert "<html" in Path(report["path"].value).read_text()[:500].lower()


def test_a_failed_range_resumes_without_reading_finished_days_again(
    hoop_factory: HoopFactory, tmp_path: Path
) -> None:
    # The gateway fails every request about the first day (a window's end, D+1 00:00:00, is
    # inclusive: failing a later day would fail its previous day's window too).
    first, last = days_ago(4), days_ago(1)
    broken = first
    hoop = hoop_factory(failing_days=frozenset({broken}))

    failed = hoop.materialize(first=first, last=last)

    assert not failed.success
    assert "reading hoop failed for 1 day(s)" in str(
        failed.get_step_failure_events()[0].event_specific_data.error
    )
    hoop.gets()
    healed = hoop_factory()  # the same data, the broken day answering again

    resumed = healed.materialize(first=first, last=last)

    assert resumed.success
    assert healed.gets() == len(healed.truth(broken))  # only the day that failed is read
    for day in (first, days_ago(3), days_ago(2), last):
        loaded, rejected = loaded_and_rejected(healed, day)
        assert loaded | rejected == healed.truth(day)
    open_sessions = healed.query("SELECT count(*) FROM sessions WHERE NOT is_final")[0][0]

    again = healed.materialize(first=first, last=last)

    assert again.success
    # Days loaded and final are skipped; of the others only the sessions that may change are read.
    assert healed.gets() == open_sessions


def test_the_token_never_reaches_run_records_event_logs_or_snapshots(
    hoop_factory: HoopFactory, tmp_path: Path
) -> None:
    token = "hpk_canary_7d1e0c9b4a"
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as instance:
        hoop = hoop_factory(token=token)
        hoop.instance = instance

        result = hoop.materialize(days_ago(1).isoformat())

        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        # Snapshots are stored compressed: read them back rather than grepping the files only.
        # (A resource given the token as a literal instead of EnvVar puts it in the job snapshot.)
        stored = [
            serialize_value(instance.get_job_snapshot(run.job_snapshot_id)),
            serialize_value(instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)),
            serialize_value(run),
            *(
                serialize_value(r.event_log_entry)
                for r in instance.get_records_for_run(run.run_id).records
            ),
        ]
        assert not [text for text in stored if token in text]
        files = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
        assert files and token.encode() not in files


def test_a_run_without_the_gateway_settings_fails_with_one_line_that_says_what_to_set(
    hoop: Hoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOP_API_URL")
    result = hoop.materialize(days_ago(2).isoformat())
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("HOOP_API_URL is not set: give the gateway's base URL")
    assert len(description.splitlines()) == 1
    assert "Traceback" not in failure.step_failure_data.error.message


def test_a_historical_backfill_run_is_green_when_its_days_are(hoop: Hoop) -> None:
    """Its days end before yesterday: 'yesterday is loaded' is not its business."""
    result = hoop.materialize(first=days_ago(4), last=days_ago(3))

    assert result.success
    checks = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}
    assert checks["yesterday_loaded"].passed
    assert "not in scope" in (checks["yesterday_loaded"].description or "")
    blocking_failed = [
        name for name, e in checks.items() if not e.passed and e.severity.value == "ERROR"
    ]
    assert blocking_failed == []
