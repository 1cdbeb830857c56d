"""The queries behind the warehouse checks and the per-day table summaries.

Plain data in, plain data out: the Dagster checks and materializations turn these results into
check results and metadata, so the SQL lives here, beside the warehouse it reads, and is tested
without Dagster. Identifiers come from the contract (``schema.TABLES``); values are bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb

from hoop_sessions import schema

Days = tuple[date, date] | None
"""An inclusive range of days to look at; None: every day."""

Row = tuple[Any, ...]


def _where_days(days: Days, column: str = "start_day") -> tuple[str, list[Any]]:
    if days is None:
        return "TRUE", []
    return f"{column} BETWEEN ? AND ?", [days[0], days[1]]


def _quoted(names: Sequence[str]) -> str:
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
    keys = _quoted(table.key)
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


@dataclass(frozen=True)
class TableDay:
    """One day of a warehouse table: its rows, a preview, and the counts its table calls for."""

    row_count: int
    preview: list[Row]
    counts: dict[str, Any]


def table_day(
    con: duckdb.DuckDBPyConnection,
    table: str,
    day: date,
    *,
    columns: Sequence[str],
    preview_rows: int,
) -> TableDay:
    """Rows, the first ``preview_rows`` of ``columns`` and, for sessions and sync_windows, the
    counts an operator reads first (per status, not final; listed, loaded, requests...)."""
    if table not in schema.TABLES:
        raise ValueError(f"{table!r} is not a warehouse table")
    (count,) = con.execute(
        f'SELECT count(*) FROM "{table}" WHERE start_day = ?', [day]
    ).fetchone() or (0,)
    preview = con.execute(
        f'SELECT {_quoted(columns)} FROM "{table}" WHERE start_day = ? ORDER BY ALL LIMIT ?',
        [day, preview_rows],
    ).fetchall()
    counts: dict[str, Any] = {}
    if table == "sessions":
        counts["sessions_by_status"] = dict(
            con.execute(
                "SELECT status, count(*) FROM sessions WHERE start_day = ? "
                "GROUP BY ALL ORDER BY ALL",
                [day],
            ).fetchall()
        )
        (not_final,) = con.execute(
            "SELECT count(*) FROM sessions WHERE start_day = ? AND NOT is_final", [day]
        ).fetchone() or (0,)
        counts["sessions_not_final"] = int(not_final)
    if table == "sync_windows":
        listed, loaded, rejected, requests, retries = con.execute(
            "SELECT coalesce(sum(sessions_listed), 0), coalesce(sum(sessions_loaded), 0), "
            "coalesce(sum(sessions_rejected), 0), coalesce(sum(requests), 0), "
            "coalesce(sum(retries), 0) "
            "FROM sync_windows WHERE start_day = ?",
            [day],
        ).fetchone() or (0, 0, 0, 0, 0)
        counts.update(
            sessions_listed=int(listed),
            sessions_loaded=int(loaded),
            sessions_rejected=int(rejected),
            requests=int(requests),
            retries=int(retries),
        )
    return TableDay(row_count=int(count), preview=preview, counts=counts)


@dataclass(frozen=True)
class FindingsSummary:
    """``compliance_findings`` as a whole: how many per severity, and the first rows to read."""

    by_severity: dict[str, int]
    preview: list[Row]


def findings_summary(
    con: duckdb.DuckDBPyConnection, *, columns: Sequence[str], preview_rows: int
) -> FindingsSummary:
    by_severity = dict(
        con.execute(
            "SELECT severity, count(*) FROM compliance_findings GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    )
    preview = con.execute(
        f"SELECT {_quoted(columns)} FROM compliance_findings "
        "ORDER BY severity, rule, start_day DESC, session_id LIMIT ?",
        [preview_rows],
    ).fetchall()
    return FindingsSummary(by_severity=by_severity, preview=preview)
