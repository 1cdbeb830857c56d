"""How rules run: the rows run_rule returns are DuckDB's own values, the settings it changes come
back, and a refresh that rewrites only the findings that changed ends with exactly the new ones."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest

from hoop_sessions.compliance import rules as compliance
from hoop_sessions.compliance.rules import Rule, RuleError, get_rule, refresh_findings, run_rule
from hoop_sessions.warehouse import load as warehouse

FOUND_AT = dt.datetime(2025, 3, 8, 3, 0, tzinfo=dt.UTC)

# Values of every type the rules return, with nulls, and values DuckDB's own conversion must decide
# (infinite or out of Python's range): run_rule must give what fetchall gives.
VALUES_SQL = """
SELECT * FROM (VALUES
    (1, 'a', 'é ✓ <b>', DATE '2025-03-02', TIMESTAMPTZ '2025-03-02 10:00:00.123456+00',
     TIME '23:59:59.999999', 7::BIGINT, 2::UBIGINT, 1.5::DOUBLE, true),
    (2, NULL, '', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (3, 'b', 'x', DATE '0001-01-01', TIMESTAMPTZ '1969-12-31 23:59:59.999999+00', TIME '00:00:00',
     '-9223372036854775808'::BIGINT, 18446744073709551615::UBIGINT, 'nan'::DOUBLE, false),
    (4, 'c', 'y', DATE '9999-12-31', TIMESTAMPTZ '9999-12-31 23:59:59.999999+00', TIME '12:30:00',
     0::BIGINT, 0::UBIGINT, -0.0::DOUBLE, NULL)
) AS v(n, s, t, d, ts, tm, i, u, f, b)
"""
OUT_OF_RANGE_SQL = [
    "SELECT 'infinity'::TIMESTAMPTZ AS ts, 1 AS n",
    "SELECT '-infinity'::TIMESTAMPTZ AS ts, 1 AS n",
    "SELECT 'infinity'::DATE AS d",
    "SELECT TIMESTAMPTZ '9999-12-31 23:59:59+00' + INTERVAL 2 DAY AS ts",
    "SELECT TIME '24:00:00' AS tm",
    "SELECT 1.25::DECIMAL(4, 2) AS x, [1, 2] AS l, {'a': 1} AS st",
    "SELECT 1 AS same, 2 AS same",
]


def rule_of(sql: str) -> Rule:
    return Rule(
        id="probe",
        title="t",
        question="q?",
        controls=("SOC 2 CC6.1",),
        severity="low",
        kind="finding",
        params=(),
        note="",
        sql=sql,
    )


@pytest.mark.parametrize("sql", [VALUES_SQL, *OUT_OF_RANGE_SQL, VALUES_SQL + " WHERE n > 9"])
def test_rows_are_the_values_duckdb_gives(sql: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if sql.startswith(VALUES_SQL):  # in range: converted by run_rule itself, not by DuckDB
        monkeypatch.setattr(compliance, "_fetch_rows_slowly", None)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    expected = con.execute(sql)
    columns = tuple(d[0] for d in expected.description or ())
    expected_rows = expected.fetchall()
    con.execute("SET TimeZone = 'America/New_York'")

    result = run_rule(con, rule_of(sql))

    assert result.columns == columns
    assert repr(result.rows) == repr(expected_rows)  # same values, same types, same time zone
    assert [type(v) for row in result.rows for v in row] == [
        type(v) for row in expected_rows for v in row
    ]
    settings = con.execute(
        "SELECT current_setting('TimeZone'), current_setting('dynamic_or_filter_threshold')"
    ).fetchall()
    assert settings == [("America/New_York", 50)]


def test_every_rule_returns_what_duckdb_returns_for_its_sql(mixed_data_dir: Path) -> None:
    with duckdb.connect(str(mixed_data_dir / "warehouse.duckdb"), read_only=True) as con:
        for rule_id in ("outside_time_window", "activity_after_revoke", "reviewer_workload"):
            rule = get_rule(rule_id)
            result = run_rule(con, rule)
            con.execute("SET TimeZone = 'UTC'")
            assert repr(result.rows) == repr(con.execute(rule.sql, rule.bind()).fetchall()), rule_id


def test_a_warehouse_from_before_the_session_summary_is_named_as_such(
    mixed_data_dir: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old.duckdb"
    shutil.copyfile(mixed_data_dir / "warehouse.duckdb", old)
    with duckdb.connect(str(old)) as con:
        con.execute("ALTER TABLE sessions DROP COLUMN connection_tag_map")
    with (
        duckdb.connect(str(old), read_only=True) as con,
        pytest.raises(RuleError, match=r"earlier version.*connection_tag_map"),
    ):
        run_rule(con, get_rule("long_session"))
    refresh_findings(old, found_at=FOUND_AT)  # read-write: it brings the summary first
    with duckdb.connect(str(old), read_only=True) as con:
        assert warehouse.missing_session_summary(con) == []
        assert run_rule(con, get_rule("long_session")).rows


def test_a_warehouse_from_before_the_access_views_is_named_as_such(
    mixed_data_dir: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old.duckdb"
    shutil.copyfile(mixed_data_dir / "warehouse.duckdb", old)
    with duckdb.connect(str(old)) as con:
        for view in ("session_access", "jit_grant_coverage", "jit_grant"):
            con.execute(f"DROP VIEW {view}")
    with (
        duckdb.connect(str(old), read_only=True) as con,
        pytest.raises(RuleError, match=r"earlier version.*jit_grant, jit_grant_coverage"),
    ):
        run_rule(con, get_rule("prod_access_without_approval"))
    refresh_findings(old, found_at=FOUND_AT)  # read-write: it brings the views first
    with duckdb.connect(str(old), read_only=True) as con:
        assert compliance.missing_views(con) == []
        assert run_rule(con, get_rule("prod_access_without_approval")).rows


def test_a_warehouse_from_before_the_rules_macros_is_named_as_such(
    mixed_data_dir: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old.duckdb"
    shutil.copyfile(mixed_data_dir / "warehouse.duckdb", old)
    with duckdb.connect(str(old)) as con:
        for macro in ("finding_evidence", "finding_session", "in_period"):
            con.execute(f"DROP MACRO {macro}")
    with (
        duckdb.connect(str(old), read_only=True) as con,
        pytest.raises(RuleError, match=r"earlier version.*in_period, finding_session"),
    ):
        run_rule(con, get_rule("long_session"))
    refresh_findings(old, found_at=FOUND_AT)  # read-write: it brings the macros first
    with duckdb.connect(str(old), read_only=True) as con:
        assert compliance.missing_views(con) == []
        assert run_rule(con, get_rule("long_session")).rows


def stored_findings(path: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            "SELECT rule, session_id, start_day, severity, CAST(detail AS VARCHAR), found_at "
            "FROM compliance_findings ORDER BY ALL"
        ).fetchall()


def test_a_refresh_over_changed_findings_ends_with_exactly_the_new_ones(
    writable_warehouse: Path, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh.duckdb"
    shutil.copyfile(writable_warehouse, fresh)
    refresh_findings(fresh, found_at=FOUND_AT)
    expected = stored_findings(fresh)

    earlier = FOUND_AT - dt.timedelta(days=1)
    refresh_findings(writable_warehouse, found_at=earlier)
    with duckdb.connect(str(writable_warehouse)) as con:
        # Findings that went away, changed, came twice, or were never a rule's.
        con.execute("DELETE FROM compliance_findings WHERE rule = 'long_session'")
        con.execute("UPDATE compliance_findings SET detail = '{}' WHERE rule = 'self_approval'")
        con.execute(
            "UPDATE compliance_findings SET start_day = NULL WHERE rule = 'guardrail_match'"
        )
        con.execute(
            "INSERT INTO compliance_findings VALUES ('retired_rule', 'x', NULL, 'low', '{}', now())"
        )
    assert stored_findings(writable_warehouse) != expected

    refresh_findings(writable_warehouse, found_at=FOUND_AT)
    assert stored_findings(writable_warehouse) == expected

    with duckdb.connect(str(writable_warehouse)) as con:
        con.execute("INSERT INTO compliance_findings SELECT * FROM compliance_findings LIMIT 2")
    refresh_findings(writable_warehouse, found_at=FOUND_AT)
    assert stored_findings(writable_warehouse) == expected
