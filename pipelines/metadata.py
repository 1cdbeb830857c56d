"""Materialization metadata: row counts, counts per status, requests and retries, previews, paths.

Previews leave out what a session *contained* (scripts, event payloads, metadata maps): the Dagster
instance is not the place for session contents, which stay in the owner-only data directory.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import MetadataValue, TableColumn, TableColumnConstraints, TableSchema

from hoop_sessions import checks, lake, raw, schema
from hoop_sessions.config import Settings

PREVIEW_ROWS = 5
# Columns shown in previews; the rest may hold session contents or are too wide to read.
PREVIEW_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "sessions": (
        "session_id",
        "start_date",
        "status",
        "verb",
        "connection",
        "user_email",
        "review_status",
        "stream_status",
        "is_final",
    ),
    "reviews": ("review_id", "session_id", "type", "status", "created_at", "revoke_at"),
    "review_groups": (
        "review_group_id",
        "review_id",
        "group_name",
        "status",
        "reviewer_email",
        "reviewed_at",
        "forced_review",
    ),
    "connection_tags": ("session_id", "tag_key", "tag_value"),
    "session_events": ("session_id", "seq", "event_time", "event_type", "payload_bytes"),
    "sync_windows": (
        "window_start",
        "window_end",
        "sessions_listed",
        "sessions_loaded",
        "sessions_rejected",
        "pages",
        "requests",
        "retries",
    ),
    "rejects": ("session_id", "stage", "reason", "seen_at"),
    "record_warnings": ("session_id", "field", "value", "kind", "detail"),
    "compliance_findings": ("rule", "session_id", "start_day", "severity", "found_at"),
}
_CELL_CHARS = 60


def column_schema(table: schema.Table) -> TableSchema:
    """``dagster/column_schema`` of a contract table, from its Arrow schema (the one contract)."""
    columns = []
    for column in table.schema:
        doc = (column.metadata or {}).get(b"doc", b"").decode()
        columns.append(
            TableColumn(
                name=column.name,
                type=schema.duckdb_type(column),
                description=doc or None,
                constraints=TableColumnConstraints(nullable=column.nullable),
            )
        )
    return TableSchema(columns=columns)


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"

    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def counts_by(values: Iterable[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return dict(sorted(counts.items()))


def raw_day(settings: Settings, day: date) -> dict[str, Any]:
    """What a day's raw file holds, from its extract record (the bodies are not read)."""
    path = raw.raw_path(settings.raw_dir, day)
    with gzip.open(path, "rb") as fh:
        header: dict[str, Any] = orjson.loads(fh.readline())[raw.TRAILER_KEY]
    windows = header.get("windows") or []
    principal = header.get("principal") or {}
    return {
        "dagster/row_count": len(header.get("order") or []),
        "sessions_listed": sum(len(w.get("session_ids") or []) for w in windows),
        "sessions_rejected": len(header.get("rejects") or []),
        "list_windows": len(windows),
        "requests": sum(int(w.get("requests") or 0) for w in windows),
        "retries": sum(int(w.get("retries") or 0) for w in windows),
        "read_at": str(header.get("finished_at")),
        "api_url": str(header.get("api_url")),
        "principal": f"{principal.get('email') or principal.get('id')} "
        f"(groups: {', '.join(str(g) for g in principal.get('groups') or [])})",
        "path": MetadataValue.path(str(path)),
        "preview": MetadataValue.md(
            markdown_table(
                ["window_start", "window_end", "sessions_listed", "pages", "requests", "retries"],
                (
                    [
                        w.get("window_start"),
                        w.get("window_end"),
                        len(w.get("session_ids") or []),
                        w.get("pages"),
                        w.get("requests"),
                        w.get("retries"),
                    ]
                    for w in windows
                ),
            )
        ),
    }


def lake_table_day(settings: Settings, table: str, day: date) -> dict[str, Any]:
    """Row count, preview and (for sessions) counts per status of one lake file."""
    path = lake.table_path(settings.lake_dir, table, day)
    file = pq.ParquetFile(path)
    columns = list(PREVIEW_COLUMNS[table])
    first = next(file.iter_batches(batch_size=PREVIEW_ROWS, columns=columns), None)
    rows = first.to_pylist() if first is not None else []
    meta: dict[str, Any] = {
        "dagster/row_count": file.metadata.num_rows,
        "path": MetadataValue.path(str(path)),
        "preview": MetadataValue.md(
            markdown_table(columns, ([r[c] for c in columns] for r in rows))
        ),
    }
    if table == "sessions":
        statuses = pq.read_table(path, columns=["status", "stream_status", "is_final"])
        meta["sessions_by_status"] = counts_by(statuses.column("status").to_pylist())
        meta["sessions_by_stream_status"] = counts_by(statuses.column("stream_status").to_pylist())
        meta["sessions_not_final"] = int(
            pc.sum(pc.invert(statuses.column("is_final"))).as_py() or 0
        )
    return meta


def warehouse_table_day(
    con: duckdb.DuckDBPyConnection, table: str, day: date, path: Path
) -> dict[str, Any]:
    """Row count, preview and (for sessions) counts per status of one day of a warehouse table."""
    columns = PREVIEW_COLUMNS[table]
    found = checks.table_day(con, table, day, columns=columns, preview_rows=PREVIEW_ROWS)
    return {
        "dagster/row_count": found.row_count,
        "dagster/table_name": f"warehouse.main.{table}",
        "path": MetadataValue.path(str(path)),
        "preview": MetadataValue.md(markdown_table(columns, found.preview)),
        **found.counts,
    }
