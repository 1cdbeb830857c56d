"""The queries behind the warehouse checks: keys, reconciliation, streams, record warnings.

Plain data in, plain data out: the Dagster checks turn these results into check results, so the
SQL lives here, beside the warehouse it reads, and runs without Dagster. Identifiers come from the
contract (``schema.TABLES``); values are bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb

from hoop_sessions.build import schema

Days = tuple[date, date] | None
"""An inclusive range of days to look at; None: every day."""

Row = tuple[Any, ...]


def _where_days(days: Days, column: str = "start_day") -> tuple[str, list[Any]]:
    if days is None:
        return "TRUE", []
    return f"{column} BETWEEN ? AND ?", [days[0], days[1]]


def quoted(names: Sequence[str]) -> str:
    """Column names as a DuckDB select list."""
    return ", ".join(f'"{name}"' for name in names)


@dataclass(frozen=True)
class DuplicateKeys:
    """Key values of a table held by more than one row: how many, and the most copied first."""

    count: int
    sample: list[Row]  # (*key, copies)


def duplicate_keys(
    con: duckdb.DuckDBPyConnection, table: schema.Table, *, sample_rows: int
) -> DuplicateKeys:
    # Over the whole table, whatever the run: a key repeated across two days is a duplicate too.
    keys = quoted(table.key)
    duplicated = (
        f'SELECT {keys}, count(*) AS copies FROM "{table.name}" GROUP BY {keys} HAVING count(*) > 1'
    )
    (count,) = con.execute(f"SELECT count(*) FROM ({duplicated})").fetchone() or (0,)
    sample = con.execute(
        f"{duplicated} ORDER BY copies DESC, {keys} LIMIT ?", [sample_rows]
    ).fetchall()
    return DuplicateKeys(count=int(count), sample=sample)


@dataclass(frozen=True)
class Reconciliation:
    """Days of ``day_reconciliation`` looked at, and those that do not reconcile."""

    days_checked: int
    not_reconciled: list[Row]  # (day, listed, loaded, rejected, rows in sessions)


def reconciliation(con: duckdb.DuckDBPyConnection, days: Days) -> Reconciliation:
    """Per day, from the ``day_reconciliation`` view (sql/schema/views.sql): listed = loaded +
    rejected, and the sessions table holds exactly the sessions loaded."""
    where, params = _where_days(days, "r.start_day")
    held_where, held_params = _where_days(days)
    rows = con.execute(
        f"""
        SELECT r.start_day, r.sessions_listed, r.sessions_loaded, r.sessions_rejected,
               coalesce(h.sessions, 0) AS held,
               coalesce(r.reconciled, false) AND coalesce(h.sessions, 0) = r.sessions_loaded
        FROM day_reconciliation AS r
        LEFT JOIN (
            SELECT start_day, count(*) AS sessions FROM sessions WHERE {held_where}
            GROUP BY start_day
        ) AS h ON h.start_day = r.start_day
        WHERE {where}
        ORDER BY r.start_day
        """,
        held_params + params,
    ).fetchall()
    return Reconciliation(
        days_checked=len(rows), not_reconciled=[tuple(r[:5]) for r in rows if not r[5]]
    )


def flawed_streams(con: duckdb.DuckDBPyConnection, days: Days) -> list[Row]:
    """(day, session_id, stream_status, truncated) of every session whose event stream hoop could
    not encode or stopped recording."""
    where, params = _where_days(days)
    return con.execute(
        f"""
        SELECT start_day, session_id, stream_status, coalesce(stream_truncated, false)
        FROM sessions
        WHERE {where} AND (stream_status = 'unreadable' OR stream_truncated)
        ORDER BY start_day, session_id
        """,
        params,
    ).fetchall()


def record_warnings_by_field(con: duckdb.DuckDBPyConnection, days: Days) -> list[Row]:
    """(kind, field, value, sessions) of ``record_warnings``, most sessions first; the value only
    for unknown values (a malformed field's value is not kept)."""
    where, params = _where_days(days)
    return con.execute(
        f"""
        SELECT kind, field, CASE WHEN kind = 'unknown_value' THEN value END AS value,
               count(DISTINCT session_id) AS sessions
        FROM record_warnings WHERE {where}
        GROUP BY ALL ORDER BY sessions DESC, kind, field, value
        """,
        params,
    ).fetchall()


def latest_day_loaded(con: duckdb.DuckDBPyConnection) -> date | None:
    (latest,) = con.execute("SELECT max(start_day) FROM sync_windows").fetchone() or (None,)
    return latest if isinstance(latest, date) else None
