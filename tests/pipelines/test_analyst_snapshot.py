"""A Dagster run over a range of days with an analyst connection held open on the published file."""

from __future__ import annotations

import duckdb
import pytest

from hoop_sessions.config import Settings
from tests.integration.test_analyst_snapshot import Analyst
from tests.pipelines.conftest import HoopFactory, days_ago


def test_an_analyst_held_open_holds_up_no_step_of_a_range_run_and_sees_it_on_reconnecting(
    hoop_factory: HoopFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    hoop = hoop_factory()
    # Small: a step that waited for the analyst's lock would fail instead of hanging the test.
    monkeypatch.setenv("HOOP_WAREHOUSE_LOCK_TIMEOUT", "2")
    assert hoop.materialize(days_ago(4).isoformat()).success
    analyst = Analyst(hoop.warehouse)
    try:
        before = analyst.days()
        assert list(before) == [days_ago(4).isoformat()]

        result = hoop.materialize(first=days_ago(3), last=days_ago(1))

        assert result.success
        assert analyst.days() == before
        analyst.reconnect()
        assert list(analyst.days()) == [days_ago(n).isoformat() for n in (4, 3, 2, 1)]
    finally:
        analyst.close()
    # The findings step wrote the writer's copy and published it.
    findings = "SELECT rule, session_id, found_at FROM compliance_findings ORDER BY ALL"
    writer = Settings(data_dir=hoop.data_dir).load_path
    with duckdb.connect(str(writer), read_only=True) as con:
        assert hoop.query(findings) == con.execute(findings).fetchall()
