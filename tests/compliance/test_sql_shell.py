"""``hoop-sessions sql`` as an analyst runs it: one statement, or the shell fed from a pipe,
against a real warehouse file."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

from hoop_sessions.cli.sql_shell import run_sql, sql_command, statement_complete
from hoop_sessions.compliance.report import format_value
from hoop_sessions.warehouse import load as warehouse

COUNT_BY_CONNECTION = (
    "SELECT connection, count(*) AS n FROM sessions GROUP BY connection ORDER BY connection"
)


@pytest.fixture
def sql(mixed_data_dir: Path):
    def _sql(*args: str, stdin: str | None = None, data_dir: Path = mixed_data_dir) -> Result:
        return CliRunner().invoke(
            sql_command, list(args), input=stdin, env={"HOOP_DATA_DIR": str(data_dir)}
        )

    return _sql


def expected_counts(data_dir: Path) -> list[tuple[str, int]]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return [(c, int(n)) for c, n in con.execute(COUNT_BY_CONNECTION).fetchall()]


def test_sql_with_a_statement_prints_its_rows_as_json(sql, mixed_data_dir: Path) -> None:
    result = sql(COUNT_BY_CONNECTION, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["connection"], r["n"]) for r in rows] == expected_counts(mixed_data_dir)


def test_sql_with_a_statement_prints_its_rows_as_csv(sql, mixed_data_dir: Path) -> None:
    result = sql(COUNT_BY_CONNECTION, "--format", "csv")
    assert result.exit_code == 0, result.output
    header, *rows = list(csv.reader(io.StringIO(result.stdout)))
    assert header == ["connection", "n"]
    assert [(c, int(n)) for c, n in rows] == expected_counts(mixed_data_dir)


def test_sql_with_a_statement_prints_a_table_by_default(sql, mixed_data_dir: Path) -> None:
    result = sql(COUNT_BY_CONNECTION)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines[0].split() == ["connection", "n"]
    for connection, n in expected_counts(mixed_data_dir):
        assert any(line.split() == [connection, str(n)] for line in lines), connection


def test_sql_error_is_one_line_and_exit_code_1(sql) -> None:
    result = sql("SELECT * FROM no_such_table")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: Catalog Error: Table with name no_such_table does not exist")
    assert "Traceback" not in result.output


def test_sql_refuses_to_write_the_warehouse(sql) -> None:
    result = sql("DELETE FROM sessions")
    assert result.exit_code == 1
    assert "read-only" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_sql_without_a_warehouse_says_to_run_a_sync_first(sql, tmp_path: Path) -> None:
    for args in (["SELECT 1"], []):
        result = sql(*args, stdin="SELECT 1;\n", data_dir=tmp_path / "empty")
        assert result.exit_code == 1
        assert "no warehouse at" in result.output and "run a sync first" in result.output
        assert "Traceback" not in result.output


def test_the_shell_from_a_pipe_lists_the_tables_without_prompts(sql) -> None:
    result = sql(stdin=".tables\n")
    assert result.exit_code == 0, result.output
    assert "sql>" not in result.output
    rows = {tuple(line.split()) for line in result.stdout.splitlines()}
    for name in ("sessions", "reviews", "sync_windows", "compliance_findings"):
        assert (name, "table") in rows, name
    assert ("session_overview", "view") in rows


def test_the_shell_runs_a_statement_written_over_several_lines(sql, mixed_data_dir) -> None:
    statement = (
        "SELECT connection,\n"
        "       count(*) AS n\n"
        "FROM sessions -- a comment; not the end\n"
        "WHERE connection <> 'x;y'\n"
        "GROUP BY connection\n"
        "ORDER BY connection;\n"
    )
    result = sql("--format", "csv", stdin=statement)
    assert result.exit_code == 0, result.output
    _header, *rows = list(csv.reader(io.StringIO(result.stdout)))
    assert [(c, int(n)) for c, n in rows] == expected_counts(mixed_data_dir)


def test_the_shell_prints_an_error_and_goes_on_to_the_next_statement(sql) -> None:
    result = sql("--format", "csv", stdin="SELEC 1;\nSELECT 41 + 1 AS answer;\n")
    assert result.stdout == "answer\n42\n"
    assert result.stderr.startswith('Error: Parser Error: syntax error at or near "SELEC"')
    assert len(result.stderr.splitlines()) == 1
    assert result.exit_code == 1  # a script learns that one of its statements failed


def test_the_shell_dot_commands_change_the_format_and_show_a_schema(sql) -> None:
    result = sql(stdin=".format json\nSELECT 1 AS one;\n.schema sync_windows\n.quit\nSELECT 2;\n")
    assert result.exit_code == 0, result.output
    decoder = json.JSONDecoder()
    first, end = decoder.raw_decode(result.stdout)
    schema, _ = decoder.raw_decode(result.stdout[end:].lstrip())
    assert first == [{"one": 1}]
    assert {"column": "principal", "type": "VARCHAR", "nullable": "YES"} in schema
    assert "2" not in result.stdout[end:].replace("sync_windows", "")  # .quit stopped the shell


def test_the_shell_names_an_unknown_table_or_command_and_goes_on(sql) -> None:
    result = sql(stdin=".schema nope\n.frobnicate\n.help\n")
    assert "Error: no table or view named 'nope'; .tables lists them" in result.stderr
    assert "Error: unknown command .frobnicate; .help lists them" in result.stderr
    assert ".schema [TABLE]" in result.stdout


def test_a_statement_is_complete_at_a_semicolon_outside_quotes_and_comments() -> None:
    assert statement_complete("SELECT 1;")
    assert statement_complete("SELECT 1; -- done")
    assert not statement_complete("SELECT ';'")
    assert not statement_complete("SELECT 1 -- ;")
    assert not statement_complete("SELECT 1 /* ; */")
    assert statement_complete('SELECT "a;b" FROM t;')


def test_each_statement_lets_go_of_the_warehouse_so_a_writer_can_take_it(
    writable_warehouse: Path,
) -> None:
    assert run_sql(writable_warehouse, "SELECT count(*) FROM sessions").rows[0][0] > 0
    # Between two statements a writer gets the file at once (no wait allowed) and changes it.
    with warehouse.connect(writable_warehouse, lock_timeout=0) as writer:
        writer.execute("CREATE TABLE analyst_note AS SELECT 'written between statements' AS note")
    assert run_sql(writable_warehouse, "SELECT note FROM analyst_note").rows == [
        ("written between statements",)
    ]


def test_a_shell_on_a_pipe_holds_no_lock_while_it_waits_for_the_next_statement(
    writable_warehouse: Path,
) -> None:
    env = {**os.environ, "HOOP_DATA_DIR": str(writable_warehouse.parent)}
    shell = subprocess.Popen(
        [sys.executable, "-m", "hoop_sessions", "sql", "--format", "csv"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert shell.stdin is not None and shell.stdout is not None
    try:
        shell.stdin.write("SELECT 'first' AS step;\n")
        shell.stdin.flush()
        assert shell.stdout.readline() == "step\n"
        assert shell.stdout.readline() == "first\n"  # the first statement is done, shell waits
        with warehouse.connect(writable_warehouse, lock_timeout=0) as writer:
            writer.execute("CREATE TABLE loaded_meanwhile AS SELECT 42 AS n")
        out, err = shell.communicate("SELECT n FROM loaded_meanwhile;\n", timeout=60)
    finally:
        if shell.poll() is None:
            shell.kill()
    assert out == "n\n42\n", err
    assert shell.returncode == 0


LONG_ROW_QUERY = (
    "SELECT session_id, connection, user_email, start_date + INTERVAL 123456 MICROSECOND AS "
    "start_date, end_date + INTERVAL 654321 MICROSECOND AS end_date, status, verb, "
    "review_status, start_day FROM sessions ORDER BY session_id LIMIT 3"
)


def _whole_values(output: str, data_dir: Path) -> list[str]:
    """The values of LONG_ROW_QUERY's rows that the output does not show whole on one line."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(LONG_ROW_QUERY).fetchall()
    lines = output.splitlines()
    values = [format_value(v) for row in rows for v in row if v is not None]
    assert any(len(v) == 36 for v in values) and any(v.endswith(".123456+00:00") for v in values)
    return [v for v in values if not any(v in line for line in lines)]


@pytest.mark.parametrize("columns", ["80", "160"])
def test_sql_tables_never_split_an_id_or_a_timestamp_across_lines(
    mixed_data_dir: Path, columns: str
) -> None:
    env = {"HOOP_DATA_DIR": str(mixed_data_dir), "COLUMNS": columns}
    result = CliRunner().invoke(sql_command, [LONG_ROW_QUERY], env=env)
    assert result.exit_code == 0, result.output
    assert _whole_values(result.stdout, mixed_data_dir) == []
    assert max(len(line) for line in result.stdout.splitlines()) <= int(columns)


def test_a_table_too_wide_for_the_terminal_prints_one_block_per_row(mixed_data_dir: Path) -> None:
    env = {"HOOP_DATA_DIR": str(mixed_data_dir), "COLUMNS": "80"}
    result = CliRunner().invoke(sql_command, [LONG_ROW_QUERY], env=env)
    assert result.stdout.count("-[ row ") == 3
    assert any(
        line.split()[:2] == ["session_id", "|"] for line in result.stdout.splitlines() if line
    )
    assert "--format csv gives them in rows" in " ".join(result.stdout.split())


def test_a_table_that_fits_the_terminal_is_one_line_per_row(mixed_data_dir: Path) -> None:
    env = {"HOOP_DATA_DIR": str(mixed_data_dir), "COLUMNS": "160"}
    query = "SELECT session_id, start_date + INTERVAL 1 MICROSECOND AS t FROM sessions LIMIT 2"
    result = CliRunner().invoke(sql_command, [query], env=env)
    assert "-[ row " not in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if line.count("-") >= 6]
    assert len(rows) == 2 and all(len(r[0]) == 36 and len(r) == 3 for r in rows)


def test_a_value_that_looks_like_markup_is_printed_as_it_is(mixed_data_dir: Path) -> None:
    result = CliRunner().invoke(
        sql_command, ["SELECT '[bold]x[/bold]' AS v"], env={"HOOP_DATA_DIR": str(mixed_data_dir)}
    )
    assert "[bold]x[/bold]" in result.stdout


def test_the_hoop_sessions_command_offers_sql(mixed_data_dir: Path) -> None:
    from hoop_sessions.cli.main import main

    result = CliRunner().invoke(
        main,
        ["sql", "SELECT 7 AS n", "--format", "json"],
        env={"HOOP_DATA_DIR": str(mixed_data_dir)},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"n": 7}]
    assert "  sql " in CliRunner().invoke(main, ["--help"]).output
