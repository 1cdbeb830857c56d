"""The warehouse beside its readers, and rebuilt from raw files alone."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime

import duckdb
import pytest

from hoop_sessions.config import Settings
from hoop_sessions.errors import WarehouseLockedError
from hoop_sessions.sync.day import load_and_record
from hoop_sessions.sync.ingest import ingest_records
from hoop_sessions.sync.run import rebuild_day
from tests.conftest import table_contents
from tests.records import b64, session_record

DAY = date(2026, 11, 1)
SYNCED = datetime(2026, 11, 10, tzinfo=UTC)


def records(n: int = 5) -> list[dict]:
    out = []
    for i in range(n):
        out.append(
            session_record(
                id=f"0b9f6a3c-1111-4222-8333-{i:012d}",
                start_date=f"2026-11-01T{10 + i:02d}:00:00.{i}5Z",
                event_stream=[[0.1 * j, "o", b64(bytes([i, j, 255]))] for j in range(i + 1)],
                review=None
                if i % 2
                else session_record()["review"]
                | {"id": f"aa9f6a3c-1111-4222-8333-{i:012d}", "review_groups_data": []},
            )
        )
    return out


def hold_read_only(path, seconds: float) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(path)!r}, read_only=True)
        print("holding", flush=True)
        time.sleep({seconds})
        con.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_load_waits_for_another_process_on_the_writers_copy_and_then_succeeds(tmp_path, caplog):
    ingest_records(records(), data_dir=tmp_path, synced_at=SYNCED)
    settings = Settings(data_dir=tmp_path, lock_timeout_seconds=60)
    # Analysts read the published file, which never holds up a load (test_analyst_snapshot.py);
    # a process on the writer's copy still does.
    reader = hold_read_only(settings.load_path, 2.0)
    try:
        with caplog.at_level(logging.WARNING, logger="hoop_sessions.warehouse.load"):
            counts = load_and_record(settings, DAY)
    finally:
        reader.wait(timeout=30)
    assert counts["sessions"] == 5
    waited = [r.getMessage() for r in caplog.records if "is locked by" in r.getMessage()]
    assert waited and f"PID {reader.pid}" in waited[0]


def test_a_load_gives_up_after_the_lock_timeout_and_names_the_holder(tmp_path):
    ingest_records(records(), data_dir=tmp_path, synced_at=SYNCED)
    warehouse = Settings(data_dir=tmp_path).load_path
    before = table_contents(warehouse)
    reader = hold_read_only(warehouse, 5.0)
    try:
        with pytest.raises(WarehouseLockedError, match=f"PID {reader.pid}"):
            load_and_record(Settings(data_dir=tmp_path, lock_timeout_seconds=1), DAY)
    finally:
        reader.wait(timeout=30)
    assert table_contents(warehouse) == before


def test_rebuild_reproduces_a_lost_warehouse_and_lake_from_raw_files(tmp_path):
    warehouse = ingest_records(records(), data_dir=tmp_path, synced_at=SYNCED)
    before = table_contents(warehouse)
    warehouse.unlink()
    shutil.rmtree(tmp_path / "lake")
    rebuild_day(Settings(data_dir=tmp_path), DAY)
    assert table_contents(warehouse) == before
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM session_events").fetchone()[0] == 15


def test_the_rebuild_command_reloads_the_days_of_its_range_from_raw_files(tmp_path):
    from click.testing import CliRunner

    from hoop_sessions.cli.main import main

    warehouse = ingest_records(records(), data_dir=tmp_path, synced_at=SYNCED)
    before = table_contents(warehouse)
    warehouse.unlink()
    result = CliRunner().invoke(
        main,
        ["rebuild", "--start", "2026-11-01", "--end", "2026-11-01"],
        env={"HOOP_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    assert "2026-11-01: loaded 5, rejected 0" in result.output
    assert table_contents(warehouse) == before
    missing = CliRunner().invoke(
        main,
        ["rebuild", "--start", "2026-10-01", "--end", "2026-10-02"],
        env={"HOOP_DATA_DIR": str(tmp_path)},
    )
    assert (
        missing.exit_code == 1
        and "no raw files between 2026-10-01 and 2026-10-02" in missing.output
    )


def test_a_transaction_that_raises_leaves_the_database_as_it_was(tmp_path):
    from hoop_sessions.warehouse.load import transaction

    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("CREATE TABLE t (n INTEGER)")
        con.execute("INSERT INTO t VALUES (1)")

        def interrupted_after_two_statements():
            with transaction(con):
                con.execute("DELETE FROM t")
                con.execute("INSERT INTO t VALUES (2)")
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            interrupted_after_two_statements()
        assert con.execute("SELECT n FROM t").fetchall() == [(1,)]
        with transaction(con):
            con.execute("INSERT INTO t VALUES (3)")
        assert con.execute("SELECT n FROM t ORDER BY n").fetchall() == [(1,), (3,)]
