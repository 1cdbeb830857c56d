"""The rules against the simulator's planted violations: realistic data, known answers.

The simulator plants violations and knows which sessions carry each one (``Dataset.planted``).
Its records go through the real flatten and load path, then every rule must find every planted
session. Where a rule is deliberately broader or narrower than the simulator's predicate, the
difference is spelled out below, so a change on either side shows up here.

The data holds what hoop 1.148 writes: one-time reviews whose revoke_at is their approval time,
sessions let through by a JIT grant (no review of their own; approved by the grant, and active
past it when they outlive it), RDP recordings, sessions ended by the credential sweeper (no exit
code) and restarts (event_size 0 with a partial stream).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import orjson
import pytest

from hoop_sessions.compliance.rules import get_rule, run_rule
from hoop_sessions.simulator.config import SimulatorConfig
from hoop_sessions.simulator.dataset import Dataset
from hoop_sessions.simulator.truth import export_truth
from hoop_sessions.sync.ingest import ingest_records

FIRST_DAY = dt.date(2026, 11, 1)
NOW = dt.datetime(2026, 11, 6, 6, 0, tzinfo=dt.UTC)
CONFIG = SimulatorConfig(seed=7, start=FIRST_DAY, days=4, sessions_per_day=100, now=NOW)

# The simulator's thresholds, passed as the rules' parameters.
SAME_QUESTION = {
    "self_approval": ("self_approval", {}),
    "events_without_approval": ("activity_without_approval", {}),
    "events_after_revoke": ("activity_after_revoke", {}),
    "break_glass": ("break_glass_approval", {}),
    "long_session": ("long_session", {"max_hours": 4}),
    "failed_prod_session": ("failed_prod_session", {}),
    "machine_identity_on_prod": ("machine_identity_on_prod", {}),
    "guardrail_match": ("guardrail_match", {}),
    "ai_high_risk": ("ai_high_risk", {}),
}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, set[str]]]:
    folder = tmp_path_factory.mktemp("simulated")
    truth = folder / "truth.ndjson"
    export_truth(CONFIG, truth, now=NOW)
    records = [orjson.loads(line) for line in truth.read_bytes().splitlines() if line.strip()]
    warehouse = ingest_records(records, data_dir=folder / "data", synced_at=NOW)
    return warehouse, Dataset(CONFIG).planted(NOW)


def found(warehouse: Path, rule_id: str, **params: object) -> set[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {row[0] for row in run_rule(con, get_rule(rule_id), params).rows}


@pytest.mark.parametrize("planted_name", sorted(SAME_QUESTION))
def test_a_rule_asking_the_simulators_question_finds_exactly_the_planted_sessions(
    simulated: tuple[Path, dict[str, set[str]]], planted_name: str
) -> None:
    warehouse, planted = simulated
    rule_id, params = SAME_QUESTION[planted_name]
    assert planted[planted_name], f"the simulator planted no {planted_name}"
    assert found(warehouse, rule_id, **params) == planted[planted_name]


def test_recording_gaps_are_the_planted_masking_errors_truncations_unreadable_and_lost_streams(
    simulated: tuple[Path, dict[str, set[str]]],
) -> None:
    warehouse, planted = simulated
    assert planted["event_size_zero_with_stream"], "the simulator planted no restart case"
    expected = (
        planted["masking_errors"]
        | planted["truncated_stream"]
        | planted["unreadable_stream"]
        | planted["event_size_zero_with_stream"]
    )
    assert found(warehouse, "masking_or_recording_gap") == expected


def test_insufficient_approvals_finds_the_planted_ones_except_break_glass_reported_apart(
    simulated: tuple[Path, dict[str, set[str]]],
) -> None:
    warehouse, planted = simulated
    expected = planted["min_approvals_not_met"] - planted["break_glass"]
    assert found(warehouse, "insufficient_approvals") == expected


def test_broader_rules_find_every_planted_session_and_more_only_by_their_definition(
    simulated: tuple[Path, dict[str, set[str]]],
) -> None:
    warehouse, planted = simulated
    # Production access also counts unapproved reviews with activity, not only missing reviews;
    # a session let through by a JIT grant counts as approved by it, on both sides.
    prod = found(warehouse, "prod_access_without_approval")
    assert planted["prod_without_review"] <= prod
    assert prod - planted["prod_without_review"] <= planted["events_without_approval"]
    # The window rule also counts an approved session that started outside it without events.
    assert planted["outside_time_window"] <= found(warehouse, "outside_time_window")
    # Finality comes from sessions.is_final as the sync computed it.
    assert planted["not_final_after_3_days"] <= found(warehouse, "not_final_after_days", max_days=3)
