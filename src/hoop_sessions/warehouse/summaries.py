"""What one day holds at each stage, for the materialization metadata of the assets.

The raw file's extract record (its bodies are not read), the first rows and the counts of a lake
file and of a warehouse day, and the findings as a whole. Plain data: ``pipelines.metadata``
turns it into Dagster metadata.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hoop_sessions import paths
from hoop_sessions.build import schema
from hoop_sessions.extract import raw
from hoop_sessions.warehouse.checks import Row, quoted


@dataclass(frozen=True)
class RawDay:
    """A day's raw file, from the extract record at its head."""

    path: Path
    sessions: int
    sessions_listed: int
    sessions_rejected: int
    requests: int
    retries: int
    read_at: str
    api_url: str
    principal: str
    windows: list[Row]  # (window_start, window_end, sessions_listed, pages, requests, retries)


def raw_day(raw_dir: Path, day: date) -> RawDay:
    reader = raw.RawDay(raw_dir, day)  # the header only: RawDataError when it is unreadable
    reader.close()
    header = reader.header
    windows = header.get("windows") or []
    principal = header.get("principal") or {}
    return RawDay(
        path=reader.path,
        sessions=len(header.get("order") or []),
        sessions_listed=sum(len(w.get("session_ids") or []) for w in windows),
        sessions_rejected=len(header.get("rejects") or []),
        requests=sum(int(w.get("requests") or 0) for w in windows),
        retries=sum(int(w.get("retries") or 0) for w in windows),
        read_at=str(header.get("finished_at")),
        api_url=str(header.get("api_url")),
        principal=f"{principal.get('email') or principal.get('id')} "
        f"(groups: {', '.join(str(g) for g in principal.get('groups') or [])})",
        windows=[
            (
                w.get("window_start"),
                w.get("window_end"),
                len(w.get("session_ids") or []),
                w.get("pages"),
                w.get("requests"),
                w.get("retries"),
            )
            for w in windows
        ],
    )


@dataclass(frozen=True)
class TableDay:
    """One day of a lake or warehouse table: its rows, a preview, and the counts its table calls
    for (sessions: per status, not final; sync_windows: listed, loaded, requests...)."""

    row_count: int
    preview: list[Row]
    counts: dict[str, Any]


def counts_by(values: Sequence[Any]) -> dict[str, int]:
    return dict(sorted(Counter(str(value) for value in values).items()))


def lake_table_day(
    lake_dir: Path, table: str, day: date, *, columns: Sequence[str], preview_rows: int
) -> TableDay:
    path = paths.table_path(lake_dir, table, day)
    file = pq.ParquetFile(path)
    first = next(file.iter_batches(batch_size=preview_rows, columns=list(columns)), None)
    rows = first.to_pylist() if first is not None else []
    counts: dict[str, Any] = {}
    if table == "sessions":
        statuses = file.read(columns=["status", "stream_status", "is_final"])
        counts["sessions_by_status"] = counts_by(statuses.column("status").to_pylist())
        counts["sessions_by_stream_status"] = counts_by(
            statuses.column("stream_status").to_pylist()
        )
        counts["sessions_not_final"] = int(
            pc.sum(pc.invert(statuses.column("is_final"))).as_py() or 0
        )
    return TableDay(
        row_count=file.metadata.num_rows,
        preview=[tuple(r[c] for c in columns) for r in rows],
        counts=counts,
    )


def warehouse_table_day(
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
        f'SELECT {quoted(columns)} FROM "{table}" WHERE start_day = ? ORDER BY ALL LIMIT ?',
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
        f"SELECT {quoted(columns)} FROM compliance_findings "
        "ORDER BY severity, rule, start_day DESC, session_id LIMIT ?",
        [preview_rows],
    ).fetchall()
    return FindingsSummary(by_severity=by_severity, preview=preview)
