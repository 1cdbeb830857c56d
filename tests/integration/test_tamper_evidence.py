"""Each day's files are recorded in a chained manifest that `verify` recomputes."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

from click.testing import CliRunner

from hoop_sessions.cli.main import main
from hoop_sessions.config import Settings
from hoop_sessions.paths import table_path
from hoop_sessions.sync.ingest import ingest_records
from hoop_sessions.sync.run import rebuild_day
from hoop_sessions.warehouse.manifest import manifest_file, verify
from tests.records import session_record

SYNCED = datetime(2026, 11, 10, tzinfo=UTC)
DAYS = [date(2026, 11, d) for d in (1, 2, 3)]


def three_days(tmp_path):
    records = [
        session_record(
            id=f"0b9f6a3c-1111-4222-8333-{d.day:012d}", start_date=f"{d.isoformat()}T08:00:00Z"
        )
        for d in DAYS
    ]
    ingest_records(records, data_dir=tmp_path, synced_at=SYNCED)


def run_verify(tmp_path):
    return CliRunner().invoke(
        main,
        ["verify", "--start", "2026-11-01", "--end", "2026-11-03"],
        env={"HOOP_DATA_DIR": str(tmp_path)},
    )


def test_untouched_days_verify_clean(tmp_path):
    three_days(tmp_path)
    result = run_verify(tmp_path)
    assert result.exit_code == 0, result.output
    assert "3 day(s) verified" in result.output


def test_a_changed_lake_file_is_reported_with_its_day(tmp_path):
    three_days(tmp_path)
    path = table_path(tmp_path / "lake", "sessions", DAYS[1])
    with open(path, "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 1]))
    result = run_verify(tmp_path)
    assert result.exit_code == 1
    assert "2026-11-02: lake/sessions changed" in result.output


def test_an_edited_manifest_breaks_the_chain_of_the_next_day(tmp_path):
    three_days(tmp_path)
    path = manifest_file(tmp_path, DAYS[0])
    path.write_bytes(path.read_bytes().replace(b"2026-11-01", b"2026-11-01 "))
    _, findings = verify(tmp_path, DAYS[0], DAYS[-1])
    assert [(f.day, f.problem.split(":")[0]) for f in findings] == [(DAYS[1], "chain broken")]


def test_a_deleted_raw_file_is_reported(tmp_path):
    three_days(tmp_path)
    os.remove(tmp_path / "raw" / "start_day=2026-11-03" / "sessions.ndjson.gz")
    _, findings = verify(tmp_path, DAYS[0], DAYS[-1])
    assert [(f.day, f.problem) for f in findings] == [(DAYS[2], "raw is missing")]


def test_syncing_an_earlier_day_again_relinks_the_chain(tmp_path):
    three_days(tmp_path)
    rebuild_day(Settings(data_dir=tmp_path), DAYS[0])
    checked, findings = verify(tmp_path, DAYS[0], DAYS[-1])
    assert checked == DAYS and findings == []
    history = (tmp_path / "manifests" / "history.jsonl").read_text().splitlines()
    assert len(history) >= 3
