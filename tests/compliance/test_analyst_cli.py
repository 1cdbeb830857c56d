"""The analyst commands (rules, query, report) as a user runs them, against a real warehouse."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

from hoop_sessions.cli.analyst import query_command, report_command, rules_command
from hoop_sessions.compliance.rules import get_rule, load_rules, run_rule

from .hoop_records import name_of


@pytest.fixture
def run(mixed_data_dir: Path):
    def _run(
        command, *args: str, data_dir: Path = mixed_data_dir, columns: str | None = None
    ) -> Result:
        runner = CliRunner()
        # COLUMNS unset unless a test gives it, whatever the environment of the test run: the
        # output is not a terminal, so rows go out whole.
        env = {"HOOP_DATA_DIR": str(data_dir), "COLUMNS": columns}
        return runner.invoke(command, list(args), env=env)

    return _run


def test_rules_lists_every_rule_with_its_severity_and_question(run) -> None:
    result = run(rules_command)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for rule in load_rules().values():
        line = next(line for line in lines if line.split()[:1] == [rule.id])
        assert rule.severity in line.split()
        assert rule.question in line


def test_rules_with_a_rule_id_shows_its_controls_and_parameters(run) -> None:
    result = run(rules_command, "long_session")
    assert result.exit_code == 0, result.output
    assert "controls: SOC 2 CC6.1, CC7.2; ISO 27001 A.8.2, A.8.5; PCI DSS 8.2.8" in result.stdout
    assert any(
        line.split()[:3] == ["max_hours", "float", "8"] for line in result.stdout.splitlines()
    )


def test_query_json_returns_the_rule_rows_as_objects(run, mixed_data_dir: Path) -> None:
    result = run(query_command, "self_approval", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [name_of(r["session_id"]) for r in rows] == ["self-approved"]
    assert rows[0]["start_date"] == "2025-03-02T10:00:00+00:00"
    assert rows[0]["start_day"] == "2025-03-02"


def test_query_csv_has_a_header_and_one_line_per_row(run, mixed_data_dir: Path) -> None:
    result = run(query_command, "access_summary", "--format", "csv")
    assert result.exit_code == 0, result.output
    table = list(csv.reader(io.StringIO(result.stdout)))
    with duckdb.connect(str(mixed_data_dir / "warehouse.duckdb"), read_only=True) as con:
        expected = run_rule(con, get_rule("access_summary"))
    assert tuple(table[0]) == expected.columns
    assert len(table) - 1 == len(expected.rows) > 1


def test_query_table_prints_whole_session_ids_and_the_parameters_used(run) -> None:
    result = run(query_command, "long_session", "--param", "max_hours=9.5")
    assert result.exit_code == 0, result.output
    (row,) = [line for line in result.stdout.splitlines() if "ssh-dev" in line]
    assert name_of(row.split()[0]) == "ten-hour-session"
    assert "max_hours=9.5" in result.stdout


def test_query_start_and_end_limit_the_rows_to_those_days(run) -> None:
    everything = json.loads(run(query_command, "not_final_after_days", "--format", "json").stdout)
    later = run(
        query_command,
        "not_final_after_days",
        "--format",
        "json",
        "--start",
        "2025-02-28",
        "--end",
        "2025-03-03",
    )
    assert [name_of(r["session_id"]) for r in everything] == ["stale-open"]
    assert json.loads(later.stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_rule"], "unknown rule 'no_such_rule'. Rules: activity_after_revoke, "),
        (
            ["long_session", "-p", "max_hour=2"],
            "unknown parameter(s) max_hour for rule long_session; parameters: start, end, env_tag, "
            "max_hours",
        ),
        (["long_session", "-p", "max_hours=two"], "parameter max_hours expects a float"),
        (["long_session", "-p", "max_hours"], "'max_hours' is not NAME=VALUE"),
        (["long_session", "--start", "03/01/2025"], "'03/01/2025' is not a date YYYY-MM-DD"),
        (["long_session", "--start", "2025-03-02", "--end", "2025-03-01"], "is before --start"),
        (["long_session", "--format", "xml"], "'xml' is not one of 'table', 'csv', 'json'"),
    ],
)
def test_query_mistakes_are_usage_errors_that_say_what_exists(run, args, message) -> None:
    result = run(query_command, *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_query_without_a_warehouse_says_to_run_a_sync_first(run, tmp_path: Path) -> None:
    result = run(query_command, "long_session", data_dir=tmp_path / "empty")
    assert result.exit_code == 1
    assert "no warehouse at" in result.output
    assert "run a sync first" in result.output


def test_report_writes_the_html_file_and_names_the_period(run, tmp_path: Path) -> None:
    out = tmp_path / "evidence" / "report.html"
    result = run(report_command, "--start", "2025-03-01", "--end", "2025-03-03", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 2025-03-01 to 2025-03-03" in result.output
    assert "2025-03-01 to 2025-03-03" in out.read_text()


def test_report_refuses_an_unknown_parameter_as_a_usage_error(run, tmp_path: Path) -> None:
    result = run(report_command, "--out", str(tmp_path / "r.html"), "-p", "prod_tag=x")
    assert result.exit_code == 2
    assert "unknown parameter(s) prod_tag" in result.output
    assert not (tmp_path / "r.html").exists()


def test_the_hoop_sessions_command_offers_rules_query_and_report(mixed_data_dir: Path) -> None:
    from hoop_sessions.cli.main import main

    result = CliRunner().invoke(
        main,
        ["query", "break_glass_approval", "--format", "json"],
        env={"HOOP_DATA_DIR": str(mixed_data_dir)},
    )
    assert result.exit_code == 0, result.output
    assert [name_of(r["session_id"]) for r in json.loads(result.stdout)] == ["break-glass"]
    listed = CliRunner().invoke(main, ["--help"]).output
    assert all(f"  {name} " in listed for name in ("rules", "query", "report"))


@pytest.mark.parametrize("columns", ["80", "160"])
def test_query_tables_never_split_an_id_or_a_timestamp_across_lines(run, columns):
    result = run(query_command, "long_session", "--param", "max_hours=9.5", columns=columns)
    assert result.exit_code == 0, result.output
    ids = [w for line in result.stdout.splitlines() for w in line.split() if len(w) == 36]
    assert [name_of(i) for i in ids] == ["ten-hour-session"]
    assert "2025-03-0" in result.stdout and " 1" in result.stdout
    assert all(len(line) <= int(columns) for line in result.stdout.splitlines())


def test_query_vertical_prints_every_column_of_a_row_on_its_own_line(run) -> None:
    result = run(query_command, "self_approval", "--vertical")
    assert result.exit_code == 0, result.output
    fields = dict(
        (name.strip(), value.strip())
        for name, _, value in (
            line.partition(" | ") for line in result.stdout.splitlines() if " | " in line
        )
    )
    assert name_of(fields["session_id"]) == "self-approved"
    assert fields["start_date"] == "2025-03-02 10:00:00+00:00"


def test_report_says_in_the_terminal_how_many_days_had_no_data(run, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = run(report_command, "--start", "2025-02-27", "--end", "2025-03-03", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (
        "1 of 5 days had no data (never synced, so not in the report): 2025-02-28" in result.stderr
    )


def test_report_of_a_fully_synced_period_names_no_missing_day(run, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = run(report_command, "--start", "2025-03-01", "--end", "2025-03-03", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "had no data" not in result.stderr


def test_report_out_is_readable_by_its_owner_only(run, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("an older report")
    out.chmod(0o644)
    result = run(report_command, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600
    assert out.read_text().startswith("<!doctype html>")
