"""The warehouse queries behind the checks and the day summaries, on a real DuckDB file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from hoop_sessions.build import schema
from hoop_sessions.simulator import Dataset, SimulatorConfig
from hoop_sessions.sync.ingest import ingest_records
from hoop_sessions.warehouse import checks, summaries

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = NOW.date() - timedelta(days=1)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    dataset = Dataset(SimulatorConfig(start=DAY, days=1, sessions_per_day=8, now=NOW))
    records = [dataset.record(sid, now=NOW) for sid in dataset.session_ids(DAY, now=NOW)]
    data = tmp_path / "data"
    ingest_records(records, data_dir=data, synced_at=NOW)
    return data / "warehouse.duckdb"


def test_a_loaded_day_reconciles_through_the_day_reconciliation_view(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        found = checks.reconciliation(con, (DAY, DAY))

    assert found.days_checked == 1
    assert found.not_reconciled == []


def test_a_session_missing_from_the_sessions_table_makes_its_day_not_reconcile(
    warehouse: Path,
) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "DELETE FROM sessions WHERE session_id = (SELECT min(session_id) FROM sessions)"
        )
        found = checks.reconciliation(con, None)
        (loaded,) = con.execute(
            "SELECT sum(sessions_loaded) FROM sync_windows WHERE start_day = ?", [DAY]
        ).fetchone() or (0,)

    assert [(row[0], row[2], row[4]) for row in found.not_reconciled] == [(DAY, loaded, loaded - 1)]


def test_a_duplicated_key_is_counted_with_its_copies(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute("INSERT INTO sessions SELECT * FROM sessions ORDER BY session_id LIMIT 1")
        found = checks.duplicate_keys(con, schema.TABLES["sessions"], sample_rows=3)

    assert found.count == 1
    assert found.sample[0][-1] == 2


def test_a_warehouse_day_summary_counts_its_rows_and_previews_the_chosen_columns(
    warehouse: Path,
) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (rows,) = con.execute("SELECT count(*) FROM sessions").fetchone() or (0,)
        found = summaries.warehouse_table_day(
            con, "sessions", DAY, columns=("session_id", "status"), preview_rows=2
        )

    assert found.row_count == rows
    assert len(found.preview) == min(2, rows) and all(len(r) == 2 for r in found.preview)
    assert sum(found.counts["sessions_by_status"].values()) == rows


def test_a_table_outside_the_contract_is_refused_before_any_sql(warehouse: Path) -> None:
    with (
        duckdb.connect(str(warehouse), read_only=True) as con,
        pytest.raises(ValueError, match="not a warehouse table"),
    ):
        summaries.warehouse_table_day(
            con, "x; DROP TABLE sessions", DAY, columns=(), preview_rows=1
        )
