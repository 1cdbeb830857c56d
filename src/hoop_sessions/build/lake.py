"""The Parquet lake: ``lake/<table>/start_day=YYYY-MM-DD/part-0.parquet``, replaced per day.

Each file is written aside and renamed over the old one, so a reader sees the old day or the new
day of a table, never a half-written file. A day's ``_manifest.json`` is written last and names the
SHA-256 of every file of that day: a day whose manifest does not match its files was interrupted
between tables and is rebuilt by the next run.
"""

from __future__ import annotations

import contextlib
from datetime import date
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from hoop_sessions.build import schema
from hoop_sessions.paths import file_sha256, manifest_path, table_path
from hoop_sessions.tempfiles import aside, fsync_file, rename_into_place, write_atomic


def write_day(lake_dir: Path, day: date, tables: dict[str, pa.Table]) -> dict[str, str]:
    """Write every day table of ``day``; returns the SHA-256 of each file, by table."""
    with DayWriter(lake_dir, day) as out:
        for table in schema.DAY_TABLES:
            out.write_table(table.name, tables[table.name])
        return out.commit()


class DayWriter:
    """The files of one day, each written aside and renamed into place by ``commit()``.

    A table comes whole (``write_table``) or batch by batch as it is built (``write_batch``,
    one row group a batch): a day's events then never need to be in memory together. Leaving
    the ``with`` block without ``commit()`` removes the files written aside, so the day keeps
    its previous files.
    """

    def __init__(self, lake_dir: Path, day: date) -> None:
        self.lake_dir = lake_dir
        self.day = day
        self._aside: dict[str, Path] = {}
        self._writers: dict[str, pq.ParquetWriter] = {}

    def __enter__(self) -> DayWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._discard()

    def _place(self, name: str) -> Path:
        if name in self._aside:
            raise ValueError(f"{name} of {self.day} is written twice")
        path = table_path(self.lake_dir, name, self.day)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._aside[name] = tmp = aside(path)
        return tmp

    def write_table(self, name: str, data: pa.Table) -> None:
        _check(name, data.schema)
        pq.write_table(
            data, self._place(name), compression="zstd", store_schema=True, **_layout(data)
        )

    def write_batch(self, name: str, batch: pa.RecordBatch) -> None:
        """Append ``batch`` to table ``name`` as a row group of its own."""
        writer = self._writers.get(name)
        if writer is None:
            _check(name, batch.schema)
            writer = self._writers[name] = pq.ParquetWriter(
                self._place(name),
                schema.TABLES[name].schema,
                compression="zstd",
                store_schema=True,
                **_streamed_layout(batch.schema.names),
            )
        writer.write_batch(batch, row_group_size=max(batch.num_rows, 1))

    def commit(self) -> dict[str, str]:
        """Put every table of the day in place, then the manifest naming their SHA-256."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        digests: dict[str, str] = {}
        for table in schema.DAY_TABLES:
            if table.name not in self._aside:
                self.write_table(table.name, table.schema.empty_table())
            tmp = self._aside[table.name]
            digests[table.name] = file_sha256(tmp)
            fsync_file(tmp)
        for table in schema.DAY_TABLES:
            rename_into_place(
                self._aside.pop(table.name), table_path(self.lake_dir, table.name, self.day)
            )
        _write_json(
            manifest_path(self.lake_dir, self.day),
            {"start_day": self.day.isoformat(), "files": digests},
        )
        return digests

    def _discard(self) -> None:
        for writer in self._writers.values():
            with contextlib.suppress(OSError, pa.ArrowException):
                writer.close()
        self._writers.clear()
        for tmp in self._aside.values():
            tmp.unlink(missing_ok=True)
        self._aside.clear()


def _check(name: str, have: pa.Schema) -> None:
    if not have.equals(schema.TABLES[name].schema):
        raise TypeError(f"{name}: rows do not match the contract schema")


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


def _streamed_layout(names: list[str]) -> dict[str, object]:
    """``_layout`` for a table written batch by batch (each batch is one row group)."""
    plain = [n for n in names if n not in BULK_COLUMNS]
    if len(plain) == len(names):
        return {"write_statistics": True}
    return {"use_dictionary": plain, "write_statistics": plain}


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


def _write_json(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
