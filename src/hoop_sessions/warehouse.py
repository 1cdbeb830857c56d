"""The DuckDB warehouse: DDL from the contract, one transaction per day, analyst views, file lock.

DuckDB lets one process write a database file or several processes read it, not both. Analysts
keep read-only connections open, so the loader waits for the lock (up to a timeout) and says who
holds it, instead of failing at once, and holds the file only while it loads.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import duckdb

from hoop_sessions import schema
from hoop_sessions.errors import WarehouseLockedError
from hoop_sessions.lake import table_path
from hoop_sessions.paths import sql_dir

log = logging.getLogger(__name__)

_LOCK_RE = re.compile(r"Conflicting lock is held in (?P<holder>.+?) \(PID (?P<pid>\d+)\)")


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


def lock_holder(exc: Exception) -> str:
    match = _LOCK_RE.search(str(exc))
    if not match:
        return "another process"
    return f"{match.group('holder')} (PID {match.group('pid')})"


@contextmanager
def connect(
    path: Path, *, read_only: bool = False, lock_timeout: float = 300.0, poll: float = 0.5
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, waiting up to ``lock_timeout`` seconds for another process to let go."""
    created = not read_only and not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    deadline = time.monotonic() + lock_timeout
    announced = False
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            if created:
                path.chmod(0o600)  # session contents: readable by the owner only
            break
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_lock_error(exc):
                raise
            holder = lock_holder(exc)
            if time.monotonic() >= deadline:
                raise WarehouseLockedError(
                    f"{path} is locked by {holder}; waited {lock_timeout:.0f} s. Close that "
                    "connection (analysts: reconnect after the load) or raise HOOP_WAREHOUSE_LOCK_TIMEOUT"
                ) from None
            if not announced:
                log.warning("%s is locked by %s; waiting up to %.0f s", path, holder, lock_timeout)
                announced = True
            time.sleep(poll)
    try:
        yield con
    finally:
        con.close()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every contract table and the analyst views, if missing."""
    for table in schema.ALL_TABLES:
        con.execute(schema.ddl(table))
        # A warehouse made by an earlier version gets the columns added since (nullable, at the end).
        have = {r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main'",
            [table.name],
        ).fetchall()}
        for field in table.schema:
            if field.name not in have:
                con.execute(f'ALTER TABLE "{table.name}" ADD COLUMN "{field.name}" {schema.duckdb_type(field)}')
    con.execute((sql_dir() / "schema" / "views.sql").read_text())


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'", [name]
    ).fetchone()
    return bool(row and row[0])


LOAD_MEMORY_LIMIT = "512MB"


def load_day(con: duckdb.DuckDBPyConnection, lake_dir: Path, day: date) -> dict[str, int]:
    """Replace one day of every day table with the day's lake files, in one transaction.

    Rows need not keep the files' order, and DuckDB is held to a memory limit: together they
    took the load of a day with a 100 MiB stream from 1.2 GiB to 0.8 GiB (DuckDB spills instead).
    """
    con.execute(f"SET memory_limit = '{LOAD_MEMORY_LIMIT}'")
    con.execute("SET preserve_insertion_order = false")
    ensure_schema(con)
    counts: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for table in schema.DAY_TABLES:
            columns = ", ".join(f'"{c}"' for c in table.columns)
            con.execute(f'DELETE FROM "{table.name}" WHERE start_day = ?', [day])
            con.execute(
                f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM read_parquet(?)',
                [str(table_path(lake_dir, table.name, day))],
            )
            row = con.execute(f'SELECT count(*) FROM "{table.name}" WHERE start_day = ?', [day]).fetchone()
            counts[table.name] = int(row[0]) if row else 0
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return counts


def non_final_days(con: duckdb.DuckDBPyConnection, since: date, until: date) -> list[date]:
    """Days in [since, until] that hold at least one session that may still change."""
    if not has_table(con, "sessions"):
        return []
    rows = con.execute(
        "SELECT DISTINCT start_day FROM sessions WHERE NOT is_final AND start_day BETWEEN ? AND ? "
        "ORDER BY start_day",
        [since, until],
    ).fetchall()
    return [r[0] for r in rows]


def loaded_days(con: duckdb.DuckDBPyConnection, since: date, until: date) -> list[date]:
    """Days in [since, until] that have been synced (they have ledger rows)."""
    if not has_table(con, "sync_windows"):
        return []
    rows = con.execute(
        "SELECT DISTINCT start_day FROM sync_windows WHERE start_day BETWEEN ? AND ? ORDER BY 1",
        [since, until],
    ).fetchall()
    return [r[0] for r in rows]


def loaded_stamps(con: duckdb.DuckDBPyConnection, since: date, until: date) -> dict[date, datetime]:
    """For each loaded day in [since, until], when the read it was loaded from finished."""
    if not has_table(con, "sync_windows"):
        return {}
    rows = con.execute(
        "SELECT start_day, max(finished_at) FROM sync_windows WHERE start_day BETWEEN ? AND ? GROUP BY 1",
        [since, until],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def final_session_ids(con: duckdb.DuckDBPyConnection, day: date) -> list[str]:
    """Sessions of ``day`` that were final when last read."""
    if not has_table(con, "sessions"):
        return []
    rows = con.execute("SELECT session_id FROM sessions WHERE start_day = ? AND is_final", [day]).fetchall()
    return [r[0] for r in rows]


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    counts = {}
    for table in schema.ALL_TABLES:
        if not has_table(con, table.name):
            counts[table.name] = 0
            continue
        row = con.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()
        counts[table.name] = int(row[0]) if row else 0
    return counts
