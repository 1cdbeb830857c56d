"""The rule files themselves: their headers parse strictly and say what auditors need."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hoop_sessions.compliance.rules import (
    ParameterValueError,
    RuleFileError,
    UnknownParameterError,
    load_rules,
    parse_rule,
    rules_dir,
)

GOOD_HEADER = """\
-- id: demo_rule
-- title: Demo
-- question: Which sessions are demos,
--     across two lines?
-- controls: SOC 2 CC6.1; ISO 27001 A.8.2; PCI DSS 7.2
-- severity: medium
-- kind: finding
-- param: start date = | First day.
-- param: end date = | Last day.
-- param: max_hours float = 8 | Threshold.
-- hoop: gateway/models/session.go (start_date is set at request
--     time)
-- hoop: gateway/api/review/review.go (reviews)
"""
GOOD_BODY = """SELECT session_id, start_day FROM sessions
WHERE start_day BETWEEN $start AND $end AND duration_seconds > $max_hours -- $not_a_param
"""


def parse(text: str):
    return parse_rule(text, source=Path("demo_rule.sql"))


def test_a_well_formed_rule_file_parses_with_continuations_controls_and_typed_defaults() -> None:
    rule = parse(GOOD_HEADER + GOOD_BODY)
    assert rule.question == "Which sessions are demos, across two lines?"
    assert rule.controls == ("SOC 2 CC6.1", "ISO 27001 A.8.2", "PCI DSS 7.2")
    assert [(p.name, p.type, p.default) for p in rule.params] == [
        ("start", "date", None),
        ("end", "date", None),
        ("max_hours", "float", 8.0),
    ]
    assert rule.sql.startswith("SELECT")
    assert rule.hoop == (
        "gateway/models/session.go (start_date is set at request time)",
        "gateway/api/review/review.go (reviews)",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("-- title: Demo\n", ""), "misses title"),
        (lambda t: t.replace("-- kind: finding", "-- colour: red"), "unknown header key"),
        (lambda t: t.replace("id: demo_rule", "id: other_rule"), "must equal the file name"),
        (lambda t: t.replace("severity: medium", "severity: critical"), "severity"),
        (lambda t: t.replace("kind: finding", "kind: summary"), "severity 'medium' of a summary"),
        (
            lambda t: t.replace("-- severity: medium", "-- severity: medium\n-- severity: low"),
            "given twice",
        ),
        (lambda t: t.replace("-- param: end date = | Last day.\n", ""), "declares the date"),
        (lambda t: t.replace("float = 8 |", "float = eight |"), "bad default"),
        (
            lambda t: t.replace("max_hours float = 8 | Threshold.", "max_hours float 8"),
            "expected 'name type = default | meaning'",
        ),
        (lambda t: t.replace("--     across", "-- across"), "expected '-- key: value'"),
        (
            lambda t: t.replace("-- param: max_hours float = 8 | Threshold.\n", ""),
            "used but undeclared: ['max_hours']",
        ),
        (
            lambda t: t + "-- param: unused int = 1 | Never used.\n",
            "declared but unused: ['unused']",
        ),
        (
            lambda t: t.replace("review.go (reviews)", "review.go reviews"),
            "expected 'path/of/hoop/file.go (the behaviour relied on)'",
        ),
        (
            lambda t: t.replace("gateway/api/review/review.go", "the review code"),
            "expected 'path/of/hoop/file.go (the behaviour relied on)'",
        ),
    ],
)
def test_a_malformed_header_is_refused_with_a_message_naming_the_problem(change, message) -> None:
    with pytest.raises(RuleFileError, match=r"demo_rule\.sql") as caught:
        parse(change(GOOD_HEADER) + GOOD_BODY)
    assert message in str(caught.value)


def test_a_rule_binds_defaults_parses_text_values_and_refuses_unknown_names() -> None:
    rule = parse(GOOD_HEADER + GOOD_BODY)
    assert rule.bind({"start": "2025-03-01", "max_hours": "1.5"}) == {
        "start": dt.date(2025, 3, 1),
        "end": None,
        "max_hours": 1.5,
    }
    with pytest.raises(
        UnknownParameterError,
        match="max_hour for rule demo_rule; parameters: start, end, max_hours",
    ):
        rule.bind({"max_hour": "2"})
    with pytest.raises(ParameterValueError, match="expects a date"):
        rule.bind({"start": "March"})
    with pytest.raises(ParameterValueError, match="expects float"):
        rule.bind({"max_hours": True})


def test_the_shipped_pack_has_every_required_rule_and_two_summaries() -> None:
    rules = load_rules()
    assert {r.id for r in rules.values() if r.kind == "finding"} == {
        "prod_access_without_approval",
        "self_approval",
        "outside_time_window",
        "activity_after_revoke",
        "activity_without_approval",
        "break_glass_approval",
        "insufficient_approvals",
        "long_session",
        "failed_prod_session",
        "not_final_after_days",
        "masking_or_recording_gap",
        "machine_identity_on_prod",
        "guardrail_match",
        "ai_high_risk",
    }
    assert {r.id for r in rules.values() if r.kind == "summary"} == {
        "access_summary",
        "reviewer_workload",
    }
    assert len(list(rules_dir().glob("*.sql"))) == len(rules)


def test_every_shipped_rule_cites_soc2_iso27001_and_pci_dss_controls() -> None:
    frameworks = ("SOC 2", "ISO 27001", "PCI DSS")
    for rule in load_rules().values():
        cited = {name for c in rule.controls for name in frameworks if c.startswith(name + " ")}
        assert cited == set(frameworks), rule.id


def test_parameters_shared_by_several_rules_mean_the_same_everywhere() -> None:
    seen: dict[str, tuple[str, object, str]] = {}
    for rule in load_rules().values():
        for p in rule.params:
            declared = (p.type, p.default, p.meaning)
            assert seen.setdefault(p.name, declared) == declared, f"{rule.id}: {p.name}"
    assert seen["env_tag"][1] == "environment"
    assert seen["prod_env"][1] == "prod"


def test_every_shipped_rule_names_the_hoop_source_file_of_the_behaviour_it_relies_on() -> None:
    for rule in load_rules().values():
        assert rule.hoop, f"{rule.id} has no '-- hoop:' line"
        for line in rule.hoop:
            source = line.split(" ", 1)[0]
            assert source.startswith(("gateway/", "agent/", "common/")), (rule.id, source)
            assert source.endswith(".go"), (rule.id, source)


def test_a_rule_without_a_hoop_line_still_parses_for_local_rules() -> None:
    header = "\n".join(
        line for line in GOOD_HEADER.splitlines() if "hoop" not in line and "time)" not in line
    )
    assert parse(header + "\n" + GOOD_BODY).hoop == ()
