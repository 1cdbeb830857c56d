"""The Parquet lake: ``lake/<table>/start_day=YYYY-MM-DD/part-0.parquet``, replaced per day.

Each file is written aside and renamed over the old one, so a reader sees the old day or the new
day of a table, never a half-written file. A day's ``_manifest.json`` is written last and names the
SHA-256 of every file of that day: a day whose manifest does not match its files was interrupted
between tables and is rebuilt by the next run.
"""

from __future__ import annotations

import hashlib
import os
from datetime import date
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from hoop_sessions import schema
from hoop_sessions.tempfiles import aside

PART = "part-0.parquet"
MANIFEST = "_manifest.json"


def table_path(lake_dir: Path, table: str, day: date) -> Path:
    return lake_dir / table / f"start_day={day.isoformat()}" / PART


def manifest_path(lake_dir: Path, day: date) -> Path:
    return lake_dir / "_manifests" / f"start_day={day.isoformat()}" / MANIFEST


def write_day(lake_dir: Path, day: date, tables: dict[str, pa.Table]) -> dict[str, str]:
    """Write every day table of ``day``; returns the SHA-256 of each file, by table."""
    digests: dict[str, str] = {}
    for table in schema.DAY_TABLES:
        data = tables[table.name]
        if not data.schema.equals(table.schema):
            raise TypeError(f"{table.name}: rows do not match the contract schema")
        path = table_path(lake_dir, table.name, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = aside(path)
        pq.write_table(data, tmp, compression="zstd", store_schema=True, **_layout(data))
        digests[table.name] = file_sha256(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    _write_json(manifest_path(lake_dir, day), {"start_day": day.isoformat(), "files": digests})
    return digests


# Columns of arbitrary bytes (a session's recorded output can be 100+ MiB). A dictionary over
# them rarely pays: nearly every payload is unique, and the writer holds every page of the column
# chunk until it gives up on the dictionary; min/max statistics of them filter nothing.
BULK_COLUMNS = frozenset({"payload", "payload_text"})
# Row groups are cut by size as well as rows, so that a reader (DuckDB's load) holds a bounded
# amount of a table at a time even on a day with a huge stream.
ROW_GROUP_BYTES = 32 << 20
ROW_GROUP_ROWS = 1 << 20


def _layout(data: pa.Table) -> dict[str, object]:
    names = data.column_names
    bulk = [n for n in names if n in BULK_COLUMNS]
    if not bulk:
        return {"write_statistics": True, "row_group_size": ROW_GROUP_ROWS}
    rows = data.num_rows
    per_row = data.nbytes / rows if rows else 1.0
    group = max(1, min(ROW_GROUP_ROWS, int(ROW_GROUP_BYTES / max(per_row, 1.0))))
    plain = [n for n in names if n not in BULK_COLUMNS]
    return {"use_dictionary": plain, "write_statistics": plain, "row_group_size": group}


def read_table(lake_dir: Path, table: str, day: date) -> pa.Table:
    return pq.read_table(table_path(lake_dir, table, day), schema=schema.TABLES[table].schema)


def day_is_consistent(lake_dir: Path, day: date) -> bool:
    """True when every table file of the day matches the day's manifest."""
    path = manifest_path(lake_dir, day)
    if not path.exists():
        return False
    files = orjson.loads(path.read_bytes()).get("files", {})
    for table in schema.DAY_TABLES:
        file = table_path(lake_dir, table.name, day)
        if not file.exists() or files.get(table.name) != file_sha256(file):
            return False
    return True


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _write_json(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = aside(path)
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    _fsync(tmp)
    os.replace(tmp, path)
