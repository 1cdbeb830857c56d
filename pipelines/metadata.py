"""Materialization metadata: row counts, counts per status, requests and retries, previews, paths.

Previews leave out what a session *contained* (scripts, event payloads, metadata maps): the Dagster
instance is not the place for session contents, which stay in the owner-only data directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
from dagster import MetadataValue, TableColumn, TableColumnConstraints, TableSchema

from hoop_sessions import paths
from hoop_sessions.build import schema
from hoop_sessions.config import Settings
from hoop_sessions.warehouse import summaries

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


def raw_day(settings: Settings, day: date) -> dict[str, Any]:
    """What a day's raw file holds, from its extract record (the bodies are not read)."""
    found = summaries.raw_day(settings.raw_dir, day)
    return {
        "dagster/row_count": found.sessions,
        "sessions_listed": found.sessions_listed,
        "sessions_rejected": found.sessions_rejected,
        "list_windows": len(found.windows),
        "requests": found.requests,
        "retries": found.retries,
        "read_at": found.read_at,
        "api_url": found.api_url,
        "principal": found.principal,
        "path": MetadataValue.path(str(found.path)),
        "preview": MetadataValue.md(
            markdown_table(
                ["window_start", "window_end", "sessions_listed", "pages", "requests", "retries"],
                found.windows,
            )
        ),
    }


def lake_table_day(settings: Settings, table: str, day: date) -> dict[str, Any]:
    """Row count, preview and (for sessions) counts per status of one lake file."""
    columns = PREVIEW_COLUMNS[table]
    found = summaries.lake_table_day(
        settings.lake_dir, table, day, columns=columns, preview_rows=PREVIEW_ROWS
    )
    return {
        "dagster/row_count": found.row_count,
        "path": MetadataValue.path(str(paths.table_path(settings.lake_dir, table, day))),
        "preview": MetadataValue.md(markdown_table(columns, found.preview)),
        **found.counts,
    }


def warehouse_table_day(
    con: duckdb.DuckDBPyConnection, table: str, day: date, path: Path
) -> dict[str, Any]:
    """Row count, preview and (for sessions) counts per status of one day of a warehouse table."""
    columns = PREVIEW_COLUMNS[table]
    found = summaries.warehouse_table_day(
        con, table, day, columns=columns, preview_rows=PREVIEW_ROWS
    )
    return {
        "dagster/row_count": found.row_count,
        "dagster/table_name": f"warehouse.main.{table}",
        "path": MetadataValue.path(str(path)),
        "preview": MetadataValue.md(markdown_table(columns, found.preview)),
        **found.counts,
    }
