"""``hoop-sessions ddl``: the lake's tables for other engines, parsed and read for real.

Trino, Spark and Athena are not at hand, so their statements are parsed by sqlglot in each engine's
dialect and checked against the Arrow schemas; DuckDB runs its statements over a real lake built by
the ingest path, and pyarrow reads the same files with Hive partitioning. Both must see the rows the
warehouse holds, day by day.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import sqlglot
from click.testing import CliRunner
from sqlglot import exp

from hoop_sessions.build import schema
from hoop_sessions.cli.main import main
from hoop_sessions.simulator.config import SimulatorConfig
from hoop_sessions.simulator.truth import export_truth
from hoop_sessions.sync.ingest import ingest_records
from hoop_sessions.warehouse.ddl import DIALECTS, column_type, ddl, default_location
from tests.records import session_record

FIRST_DAY = dt.date(2026, 11, 1)
NOW = dt.datetime(2026, 11, 4, 6, 0, tzinfo=dt.UTC)
CONFIG = SimulatorConfig(seed=7, start=FIRST_DAY, days=2, sessions_per_day=40, now=NOW)
HIVE_STYLE = ("trino", "spark", "athena")
LOCATION = "s3://compliance-bucket/hoop/lake"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake and warehouse of two simulated days, plus a rejected record and a record warning,
    so that every lake table has rows."""
    folder = tmp_path_factory.mktemp("lake")
    truth = folder / "truth.ndjson"
    export_truth(CONFIG, truth, now=NOW)
    records = [orjson.loads(line) for line in truth.read_bytes().splitlines() if line.strip()]
    unreadable = session_record(id="0b9f6a3c-1111-4222-8333-000000000001", event_stream="garbled")
    odd_window = session_record(id="0b9f6a3c-1111-4222-8333-000000000002")
    odd_window["review"]["id"] = "aa9f6a3c-1111-4222-8333-000000000002"
    odd_window["review"]["time_window"]["configuration"]["start_time"] = "25:99"
    ingest_records([*records, unreadable, odd_window], data_dir=folder / "data", synced_at=NOW)
    return folder / "data"


def warehouse_counts(data_dir: Path, table: str) -> dict[dt.date, int]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(f'SELECT start_day, count(*) FROM "{table}" GROUP BY ALL').fetchall()
    return dict(rows)


def creates(dialect: str, text: str) -> list[exp.Create]:
    return [s for s in sqlglot.parse(text, read=dialect) if isinstance(s, exp.Create)]


def created_name(create: exp.Create) -> str:
    target = create.this.this if isinstance(create.this, exp.Schema) else create.this
    assert isinstance(target, exp.Table)
    return target.name


@pytest.mark.parametrize("dialect", DIALECTS)
def test_each_dialect_parses_into_one_create_statement_per_lake_table(dialect: str) -> None:
    made = creates(dialect, ddl(dialect, LOCATION))
    assert [created_name(c) for c in made] == [t.name for t in schema.DAY_TABLES]


@pytest.mark.parametrize("dialect", HIVE_STYLE)
def test_every_contract_column_is_declared_once_and_start_day_is_the_partition(
    dialect: str,
) -> None:
    made = {created_name(c): c for c in creates(dialect, ddl(dialect, LOCATION))}
    for table in schema.DAY_TABLES:
        create = made[table.name]
        declared = [col.name for col in create.find_all(exp.ColumnDef)]
        assert sorted(declared) == sorted(table.schema.names), table.name
        partitioned = create.find(exp.PartitionedByProperty)
        assert partitioned is not None, table.name
        assert "start_day" in partitioned.sql(dialect=dialect), table.name


@pytest.mark.parametrize("dialect", HIVE_STYLE)
def test_each_table_points_at_its_own_directory_and_registers_its_days(dialect: str) -> None:
    text = ddl(dialect, LOCATION + "/")
    statements = sqlglot.parse(text, read=dialect)
    for table in schema.DAY_TABLES:
        assert f"'{LOCATION}/{table.name}" in text
        repairs = [s for s in statements if isinstance(s, exp.Command) and table.name in s.sql()]
        assert len(repairs) == 1, table.name
    assert "lake//" not in text


@pytest.mark.parametrize(
    ("column", "trino", "athena", "spark"),
    [
        ("sessions.start_date", "TIMESTAMP", "TIMESTAMP", "TIMESTAMP"),
        ("sessions.start_day", "DATE", "DATE", "DATE"),
        ("sessions.metadata", "VARCHAR", "STRING", "STRING"),
        ("sessions.exit_code", "BIGINT", "BIGINT", "BIGINT"),
        ("sessions.duration_seconds", "DOUBLE", "DOUBLE", "DOUBLE"),
        ("sessions.is_final", "BOOLEAN", "BOOLEAN", "BOOLEAN"),
        ("session_events.payload", "VARBINARY", "BINARY", "BINARY"),
        ("reviews.force_approval_groups", "ARRAY(VARCHAR)", "ARRAY<STRING>", "ARRAY<STRING>"),
        ("reviews.time_window_start", "BIGINT", "BIGINT", "TIME(6)"),
    ],
)
def test_arrow_types_map_to_each_engines_type(
    column: str, trino: str, athena: str, spark: str
) -> None:
    table, name = column.split(".")
    field = schema.TABLES[table].schema.field(name)
    assert [column_type(field, d) for d in ("trino", "athena", "spark")] == [trino, athena, spark]


def test_a_time_column_declared_as_bigint_says_its_unit_in_its_comment() -> None:
    for dialect in ("trino", "athena"):
        line = next(x for x in ddl(dialect, LOCATION).splitlines() if "time_window_start" in x)
        assert "BIGINT" in line
        assert "microseconds since midnight" in line


def test_an_arrow_type_without_a_mapping_is_refused_with_the_column_name() -> None:
    with pytest.raises(TypeError, match="of column wobble"):
        column_type(pa.field("wobble", pa.decimal128(10, 2)), "trino")


def test_a_quote_in_a_description_stays_inside_its_string_literal() -> None:
    # hoop's `user` and '' appear in the sessions descriptions; each dialect must still parse them
    # as one comment per column, or the column after would be swallowed.
    for dialect in HIVE_STYLE:
        text = ddl(dialect, LOCATION)
        assert "hoop" in text
        sessions = creates(dialect, text)[0]
        comments = [c for c in sessions.find_all(exp.CommentColumnConstraint)]
        assert len(comments) == len(schema.SESSIONS.schema), dialect
        assert any("hoop's `user`" in c.this.name for c in comments), dialect


def test_duckdb_views_over_the_lake_hold_the_warehouse_rows_of_every_table_day_by_day(
    data_dir: Path,
) -> None:
    lake = data_dir / "lake"
    with duckdb.connect() as con:
        con.execute(ddl("duckdb", default_location(lake, "duckdb")))
        for table in schema.DAY_TABLES:
            counts = dict(
                con.execute(
                    f'SELECT start_day, count(*) FROM "{table.name}" GROUP BY ALL'
                ).fetchall()
            )
            expected = warehouse_counts(data_dir, table.name)
            assert expected, f"the test lake has no {table.name} rows"
            assert counts == expected, table.name
            described = con.execute(f'DESCRIBE "{table.name}"').fetchall()
            assert [row[0] for row in described] == table.schema.names, table.name


def test_duckdb_views_read_the_contract_types(data_dir: Path) -> None:
    with duckdb.connect() as con:
        con.execute(ddl("duckdb", default_location(data_dir / "lake", "duckdb")))
        for table in schema.DAY_TABLES:
            described = {
                row[0]: row[1] for row in con.execute(f'DESCRIBE "{table.name}"').fetchall()
            }
            for field in table.schema:
                want = schema.duckdb_type(field)
                want = "VARCHAR" if want == "JSON" else want  # JSON travels as text in Parquet
                assert described[field.name] == want.replace(
                    "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"
                )


def test_pyarrow_reads_the_lake_with_hive_partitioning_as_the_warehouse_holds_it(
    data_dir: Path,
) -> None:
    for table in schema.DAY_TABLES:
        partitioning = ds.partitioning(pa.schema([table.schema.field("start_day")]), flavor="hive")
        dataset = ds.dataset(
            data_dir / "lake" / table.name,
            format="parquet",
            partitioning=partitioning,
            schema=table.schema,
        )
        data = dataset.to_table()
        days = data.group_by("start_day").aggregate([("start_day", "count")]).to_pylist()
        counts = {row["start_day"]: row["start_day_count"] for row in days}
        assert counts == warehouse_counts(data_dir, table.name), table.name


def test_the_command_prints_the_duckdb_views_of_the_lake_in_hoop_data_dir(data_dir: Path) -> None:
    result = CliRunner().invoke(
        main, ["ddl", "--dialect", "duckdb"], env={"HOOP_DATA_DIR": str(data_dir)}
    )
    assert result.exit_code == 0, result.output
    assert f"read_parquet('{(data_dir / 'lake').resolve()}/sessions/*/*.parquet'" in result.stdout
    with duckdb.connect() as con:
        con.execute(result.stdout)
        assert con.execute("SELECT count(*) FROM sessions").fetchone() == (
            sum(warehouse_counts(data_dir, "sessions").values()),
        )


def test_the_command_gives_other_engines_a_file_url_by_default(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["ddl", "--dialect", "spark"], env={"HOOP_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    assert f"LOCATION '{(tmp_path / 'lake').resolve().as_uri()}/sessions'" in result.stdout


def test_the_command_uses_the_location_given_and_warns_athena_of_a_non_s3_one(
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    given = runner.invoke(main, ["ddl", "--dialect", "athena", "--location", LOCATION])
    assert given.exit_code == 0, given.output
    assert f"LOCATION '{LOCATION}/sessions/'" in given.stdout
    assert given.stderr == ""
    local = runner.invoke(
        main, ["ddl", "--dialect", "athena"], env={"HOOP_DATA_DIR": str(tmp_path)}
    )
    assert local.exit_code == 0, local.output
    assert "s3://" in local.stderr


def test_the_command_refuses_an_unknown_dialect_and_is_listed_in_the_help() -> None:
    runner = CliRunner()
    refused = runner.invoke(main, ["ddl", "--dialect", "oracle"])
    assert refused.exit_code == 2
    assert "trino" in refused.output
    assert "ddl" in runner.invoke(main, ["--help"]).output
