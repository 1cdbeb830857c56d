"""refresh_findings: every finding rule into compliance_findings, in one transaction."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from hoop_sessions.compliance.rules import (
    RuleFileError,
    UnknownParameterError,
    load_rules,
    parse_rule,
    refresh_findings,
    run_rule,
)

from .hoop_records import name_of

FOUND_AT = dt.datetime(2025, 3, 8, 3, 0, tzinfo=dt.UTC)


def findings(warehouse: Path) -> list[tuple[str, str, str, str, dt.datetime]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "SELECT rule, session_id, severity, CAST(detail AS VARCHAR), found_at "
            "FROM compliance_findings ORDER BY rule, session_id"
        ).fetchall()


def test_refresh_stores_one_row_per_rule_and_session_with_the_evidence_as_json(
    writable_warehouse: Path,
) -> None:
    result = refresh_findings(writable_warehouse, found_at=FOUND_AT)

    rules = load_rules()
    rows = findings(writable_warehouse)
    assert result.total == len(rows) > 0
    assert set(result.counts) == {r.id for r in rules.values() if r.kind == "finding"}
    with duckdb.connect(str(writable_warehouse), read_only=True) as con:
        for rule_id, count in result.counts.items():
            expected = run_rule(con, rules[rule_id])
            stored = [r for r in rows if r[0] == rule_id]
            assert len(stored) == count == len(expected.rows), rule_id
            assert {r[1] for r in stored} == {row[0] for row in expected.rows}, rule_id
    rule_id, session_id, severity, detail, found_at = next(
        r for r in rows if r[0] == "self_approval"
    )
    evidence = json.loads(detail)
    assert (severity, found_at) == ("high", FOUND_AT)
    assert name_of(session_id) == "self-approved"
    assert evidence["session_id"] == session_id
    assert evidence["approvers"] == "alice@example.com"
    assert evidence["start_date"] == "2025-03-02 10:00:00+00"  # UTC whatever the machine's zone


def test_refresh_leaves_summary_rules_out(writable_warehouse: Path) -> None:
    refresh_findings(writable_warehouse, found_at=FOUND_AT)
    stored_rules = {r[0] for r in findings(writable_warehouse)}
    assert not stored_rules & {"access_summary", "reviewer_workload"}


def test_a_second_refresh_replaces_the_content_instead_of_adding_to_it(
    writable_warehouse: Path,
) -> None:
    first = refresh_findings(writable_warehouse, found_at=FOUND_AT)
    later = FOUND_AT + dt.timedelta(days=1)
    with duckdb.connect(str(writable_warehouse)) as con:
        second = refresh_findings(con, found_at=later)
    rows = findings(writable_warehouse)
    assert len(rows) == first.total == second.total
    assert {r[4] for r in rows} == {later}


def test_parameters_reach_every_rule_that_declares_them(writable_warehouse: Path) -> None:
    strict = refresh_findings(writable_warehouse, params={"max_hours": 0.5})
    assert strict.counts["long_session"] > 1
    nothing_is_prod = refresh_findings(writable_warehouse, params={"prod_env": "no-such-env"})
    for rule_id in (
        "prod_access_without_approval",
        "failed_prod_session",
        "machine_identity_on_prod",
    ):
        assert nothing_is_prod.counts[rule_id] == 0


def test_an_unknown_parameter_is_refused_before_anything_changes(writable_warehouse: Path) -> None:
    refresh_findings(writable_warehouse, found_at=FOUND_AT)
    before = findings(writable_warehouse)
    with pytest.raises(UnknownParameterError, match="max_hour "):
        refresh_findings(writable_warehouse, params={"max_hour": 1})
    assert findings(writable_warehouse) == before


def test_a_failing_rule_rolls_back_and_keeps_the_previous_findings(
    writable_warehouse: Path, tmp_path: Path
) -> None:
    refresh_findings(writable_warehouse, found_at=FOUND_AT)
    before = findings(writable_warehouse)
    duplicate = tmp_path / "twice_per_session.sql"
    duplicate.write_text(
        "-- id: twice_per_session\n-- title: t\n-- question: q?\n-- controls: SOC 2 CC6.1\n"
        "-- severity: low\n-- kind: finding\n"
        "-- param: start date = | s\n-- param: end date = | e\n"
        "SELECT session_id, start_day FROM sessions, range(2)\n"
        "WHERE start_day BETWEEN coalesce($start, DATE '0001-01-01') "
        "AND coalesce($end, DATE '9999-12-31')\n"
    )
    rules = {
        **load_rules(),
        "twice_per_session": parse_rule(duplicate.read_text(), source=duplicate),
    }
    with pytest.raises(RuleFileError, match=r"twice_per_session\.sql returned .* duplicate"):
        refresh_findings(writable_warehouse, rules=rules, found_at=FOUND_AT + dt.timedelta(1))
    assert findings(writable_warehouse) == before
