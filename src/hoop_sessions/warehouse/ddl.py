"""``hoop-sessions ddl``: the lake's tables for Trino, Spark, Athena and DuckDB.

The lake is Hive-partitioned Parquet (``lake/<table>/start_day=YYYY-MM-DD/part-0.parquet``), which
these engines read where it lies, on a disk or in object storage, once a table names its columns and
its location. The definitions are generated from the Arrow schemas of ``schema.DAY_TABLES``, so the
data contract stays in one place.

What is on disk decides the shape. ``start_day`` is the directory key *and* a column of every file
(the files are written with the whole contract schema). The Hive-style engines take a partition
column's value from the directory and never read it from the file, so it is declared once, as the
partition column; DuckDB's ``hive_partitioning`` finds the same name in both and the values agree.

Types that an engine lacks:

- ``TIMESTAMPTZ`` (Arrow timestamp, µs, UTC; Parquet ``isAdjustedToUTC=true``): Trino's and Athena's
  Hive tables have no zoned timestamp, so the columns are ``TIMESTAMP`` holding the UTC wall clock
  (Trino keeps milliseconds unless the catalog's ``timestamp_precision`` is ``MICROSECONDS``).
  Spark's ``TIMESTAMP`` is an instant, as in DuckDB.
- ``TIME`` (the review time window, Arrow time64 µs): Hive tables have no TIME type. Trino (411 and
  later) reads a Parquet TIME column declared ``BIGINT`` as microseconds since midnight, and so is it
  declared for Trino and Athena. Spark has a TIME type from 4.1 on (``TIME(6)``); an older Spark
  cannot read Parquet TIME at all and needs the two columns removed from its statement.
- JSON documents are UTF-8 text in Parquet; none of the three has a JSON column type in an external
  table, so they are strings, parsed at query time (``json_parse``, ``from_json``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import pyarrow as pa

from hoop_sessions.build import schema
from hoop_sessions.config import Settings
from hoop_sessions.errors import HoopSessionsError

DIALECTS = ("trino", "spark", "athena", "duckdb")
PARTITION = "start_day"


def default_location(lake_dir: Path, dialect: str) -> str:
    """The lake directory as each engine names it: a ``file://`` URL, a plain path for DuckDB."""
    path = lake_dir.resolve()
    return str(path) if dialect == "duckdb" else path.as_uri()


def ddl(dialect: str, location: str) -> str:
    """The statements that make every lake table readable by ``dialect`` at ``location``."""
    try:
        render = _RENDER[dialect]
    except KeyError:
        raise ValueError(f"unknown dialect {dialect!r}; one of {', '.join(DIALECTS)}") from None
    base = location.rstrip("/")
    head = [
        f"-- The hoop-sessions lake for {dialect}, generated from the data contract (schema.py).",
        f"-- Location: {base}",
        *(f"-- {line}" for line in _NOTES[dialect]),
    ]
    body = [render(table, f"{base}/{table.name}") for table in schema.DAY_TABLES]
    return "\n".join(head) + "\n\n" + "\n\n".join(body) + "\n"


def column_type(field: pa.Field, dialect: str) -> str:
    """The type of a contract column in ``dialect`` (not DuckDB, whose view reads the files)."""
    t = field.type
    if pa.types.is_list(t):
        item = column_type(pa.field(field.name, t.value_type), dialect)
        return f"ARRAY({item})" if dialect == "trino" else f"ARRAY<{item}>"
    if pa.types.is_timestamp(t) and t.unit == "us" and t.tz == "UTC":
        return "TIMESTAMP"
    if t == pa.time64("us"):
        return "TIME(6)" if dialect == "spark" else "BIGINT"
    names = _TYPES[dialect]
    if t in names:
        return names[t]
    raise TypeError(f"no {dialect} type for Arrow type {t} of column {field.name}")


_COMMON = {
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.date32(): "DATE",
}
_TYPES: dict[str, dict[pa.DataType, str]] = {
    "trino": {**_COMMON, pa.string(): "VARCHAR", pa.binary(): "VARBINARY"},
    "athena": {**_COMMON, pa.string(): "STRING", pa.binary(): "BINARY"},
    "spark": {**_COMMON, pa.string(): "STRING", pa.binary(): "BINARY"},
}

_NOTES: dict[str, tuple[str, ...]] = {
    "trino": (
        "Run in a Hive catalog (USE <catalog>.<schema>). The CALL after each table registers the",
        "days present; run it again after a sync adds days. TIMESTAMP columns hold UTC; for",
        "microseconds: SET SESSION <catalog>.timestamp_precision = 'MICROSECONDS'.",
        "time_window_start/end: BIGINT microseconds since midnight UTC (Hive tables have no TIME).",
    ),
    "athena": (
        "LOCATION must be an s3:// URL. MSCK REPAIR TABLE registers the days present; run it again",
        "after a sync adds days. TIMESTAMP columns hold UTC.",
        "time_window_start/end: BIGINT microseconds since midnight UTC (Hive tables have no TIME).",
    ),
    "spark": (
        "MSCK REPAIR TABLE registers the days present; run it again after a sync adds days.",
        "time_window_start/end are TIME(6), a type of Spark 4.1 and later; an older Spark cannot",
        "read Parquet TIME columns: remove those two lines from the reviews table.",
    ),
    "duckdb": (
        "Views over the Parquet files: new days appear without any statement. For s3:// URLs",
        "load DuckDB's httpfs extension and set its credentials first.",
    ),
}


def _comment(field: pa.Field, dialect: str) -> str:
    """The column's description from the contract, with what the engine's type does not say."""
    meta = field.metadata or {}
    doc = str(meta.get(b"doc", b"").decode())
    if meta.get(b"duckdb_type") == b"JSON":
        doc = f"{doc} (JSON text)"
    if pa.types.is_time(field.type) and column_type(field, dialect) == "BIGINT":
        doc = f"{doc} (microseconds since midnight)"
    return doc


def _hive_string(text: str) -> str:
    # Hive and Spark SQL strings escape with a backslash; '' would be two adjacent literals.
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sql_string(text: str) -> str:
    """A standard SQL string literal (Trino, DuckDB)."""
    return "'" + text.replace("'", "''") + "'"


def _columns(table: schema.Table, *, partition_last: bool) -> list[pa.Field]:
    fields = [f for f in table.schema if f.name != PARTITION]
    if PARTITION not in table.schema.names:
        raise ValueError(f"lake table {table.name} has no {PARTITION} column to partition by")
    return [*fields, table.schema.field(PARTITION)] if partition_last else fields


def _trino(table: schema.Table, location: str) -> str:
    # The Hive connector wants the partition columns last in the column list.
    cols = [
        f'    "{f.name}" {column_type(f, "trino")} COMMENT {_sql_string(_comment(f, "trino"))}'
        for f in _columns(table, partition_last=True)
    ]
    return (
        f'CREATE TABLE IF NOT EXISTS "{table.name}" (\n' + ",\n".join(cols) + "\n)\n"
        f"COMMENT {_sql_string(table.description)}\n"
        "WITH (\n"
        "    format = 'PARQUET',\n"
        f"    external_location = {_sql_string(location)},\n"
        f"    partitioned_by = ARRAY['{PARTITION}']\n"
        ");\n"
        "CALL system.sync_partition_metadata("
        f"schema_name => CURRENT_SCHEMA, table_name => '{table.name}', mode => 'FULL');"
    )


def _athena(table: schema.Table, location: str) -> str:
    # A partition column is named only in PARTITIONED BY: Hive refuses it in the column list too.
    cols = [
        f"    `{f.name}` {column_type(f, 'athena')} COMMENT {_hive_string(_comment(f, 'athena'))}"
        for f in _columns(table, partition_last=False)
    ]
    part = table.schema.field(PARTITION)
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{table.name}` (\n" + ",\n".join(cols) + "\n)\n"
        f"COMMENT {_hive_string(table.description)}\n"
        f"PARTITIONED BY (`{PARTITION}` {column_type(part, 'athena')} "
        f"COMMENT {_hive_string(_comment(part, 'athena'))})\n"
        "STORED AS PARQUET\n"
        f"LOCATION {_hive_string(location + '/')};\n"
        f"MSCK REPAIR TABLE `{table.name}`;"
    )


def _spark(table: schema.Table, location: str) -> str:
    cols = [
        f"    `{f.name}` {column_type(f, 'spark')} COMMENT {_hive_string(_comment(f, 'spark'))}"
        for f in _columns(table, partition_last=True)
    ]
    return (
        f"CREATE TABLE IF NOT EXISTS `{table.name}` (\n" + ",\n".join(cols) + "\n)\n"
        "USING PARQUET\n"
        f"PARTITIONED BY (`{PARTITION}`)\n"
        f"LOCATION {_hive_string(location)}\n"
        f"COMMENT {_hive_string(table.description)};\n"
        f"MSCK REPAIR TABLE `{table.name}`;"
    )


def _duckdb(table: schema.Table, location: str) -> str:
    # The glob matches the day files only, not those being written (.part-0.parquet.<pid>.tmp).
    files = _sql_string(f"{location}/*/*.parquet")
    return (
        f'CREATE OR REPLACE VIEW "{table.name}" AS\n'
        f"SELECT * FROM read_parquet({files}, hive_partitioning = true);"
    )


_RENDER: dict[str, Callable[[schema.Table, str], str]] = {
    "trino": _trino,
    "athena": _athena,
    "spark": _spark,
    "duckdb": _duckdb,
}


@click.command("ddl")
@click.option("--dialect", required=True, type=click.Choice(DIALECTS), help="The engine.")
@click.option(
    "--location",
    help="URL of the lake directory (s3://bucket/prefix/lake, ...); default: the lake of "
    "HOOP_DATA_DIR, as a file:// URL (a path for duckdb).",
)
def ddl_command(dialect: str, location: str | None) -> None:
    """Print the table definitions that let another engine read the Parquet lake in place."""
    try:
        settings = Settings.from_env()
        # With an object store the lake is under its URL; engines read s3:// (and gs://) there.
        store_lake = f"{settings.data_location}/lake" if settings.data_url else None
        where = location or store_lake or default_location(settings.lake_dir, dialect)
    except HoopSessionsError as exc:  # a malformed setting of the environment
        raise click.ClickException(str(exc)) from None
    if dialect == "athena" and not where.startswith("s3://"):
        click.echo(f"note: Athena reads tables from s3:// locations only, not {where}", err=True)
    click.echo(ddl(dialect, where), nl=False)
