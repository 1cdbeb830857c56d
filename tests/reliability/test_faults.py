"""A gateway behind a misbehaving proxy: every kind of transient fault, at 5 %, 20 % and 40 %.

Faults are the simulator's (429 with Retry-After, 500, 502, 503, 504, a dropped connection, a body
cut short, an answer slower than the client's timeout), drawn deterministically from the seed, so
a run that retries its way through must end with the very warehouse of a fault-free run.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import duckdb
import pytest

from hoop_sessions.simulator import Dataset
from hoop_sessions.simulator.config import FAULT_KINDS
from hoop_sessions.sync.run import sync_days
from tests.conftest import FIRST_DAY, NOW, settings_for
from tests.reliability.conftest import backfill, cli_env, content_hash

# Seed 4 draws every fault kind at both default sizes (checked by the tests themselves).
SEED = 4


@pytest.mark.parametrize(
    ("rate", "days", "sessions_per_day"),
    [
        pytest.param(0.05, 2, 100, id="5-percent"),
        pytest.param(0.20, 2, 40, id="20-percent"),
        pytest.param(0.40, 2, 40, id="40-percent", marks=pytest.mark.reliability),
        pytest.param(0.20, 3, 300, id="20-percent-900-sessions", marks=pytest.mark.reliability),
        pytest.param(0.40, 3, 300, id="40-percent-900-sessions", marks=pytest.mark.reliability),
    ],
)
def test_every_kind_of_fault_at_this_rate_gives_the_warehouse_of_a_fault_free_run(
    gateway_factory, tmp_path, rate, days, sessions_per_day
):
    day_list = [FIRST_DAY + timedelta(days=i) for i in range(days)]
    shape = {"days": days, "sessions_per_day": sessions_per_day, "seed": SEED}
    clean = gateway_factory(**shape)
    flaky = gateway_factory(**shape, fault_rate=rate, slow_response_s=1.5)
    assert sync_days(settings_for(clean, tmp_path / "clean"), day_list, now=NOW).ok

    # The client gives up on an answer after 1 s; a `slow` fault answers after 1.5 s.
    result = sync_days(
        settings_for(flaky, tmp_path / "flaky", timeout_seconds=1.0), day_list, now=NOW
    )

    assert result.ok, result.failed
    faults = flaky.stats.faults
    assert set(faults) == set(FAULT_KINDS), f"not every fault kind was drawn: {faults}"
    assert sum(d.extract.retries for d in result.days if d.extract) > 0
    expected = content_hash(tmp_path / "clean" / "warehouse.duckdb")
    assert content_hash(tmp_path / "flaky" / "warehouse.duckdb") == expected


def test_a_day_that_keeps_failing_is_named_with_its_cause_keeps_its_old_rows_and_spares_the_others(
    gateway_factory, tmp_path
):
    # The simulator fails every list window that touches a failing day, and the window of day D
    # ends at D+1 00:00:00 inclusive: the failing day is the first, so no other day is touched.
    failing, *others = days = [FIRST_DAY + timedelta(days=i) for i in range(3)]
    data = tmp_path / "data"
    # The day's earlier content was read a minute after the day ended, when some of its sessions
    # were still running or waiting for review: it differs from today's.
    early = datetime.combine(failing + timedelta(days=1), time(0, 1), tzinfo=UTC)
    before = gateway_factory(days=3, sessions_per_day=30, seed=8, now=early)
    done = backfill(
        failing, failing, env=cli_env(before.url, before.token, data, HOOP_CLOSE_MARGIN_MINUTES="0")
    )
    assert done.returncode == 0, done.stderr
    failing_before = content_hash(data / "warehouse.duckdb", day=failing)

    broken = gateway_factory(days=3, sessions_per_day=30, seed=8, failing_days=frozenset({failing}))
    failed = backfill(
        days[0],
        days[-1],
        "--redo",
        env=cli_env(broken.url, broken.token, data, HOOP_RETRY_ATTEMPTS="3"),
    )

    assert failed.returncode == 1, failed.stdout + failed.stderr
    message = failed.stderr
    assert "1 day(s) failed; their previous content is kept" in message, message
    failure = next(line for line in message.splitlines() if line.strip().startswith(str(failing)))
    assert "GET /api/sessions kept failing after 3 attempts" in failure and "HTTP 500" in failure, (
        failure
    )
    assert "Traceback" not in message
    after = content_hash(data / "warehouse.duckdb", day=failing)
    assert {k: v for k, v in after.items() if failing_before[k] != v} == {}
    truth = Dataset(broken.config)
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        for day in others:
            loaded = {
                r[0]
                for r in con.execute(
                    "SELECT session_id FROM sessions WHERE start_day = ?", [day]
                ).fetchall()
            }
            assert loaded == set(truth.session_ids(day, now=NOW)), day
        reconciled = dict(
            con.execute("SELECT start_day, reconciled FROM day_reconciliation").fetchall()
        )
    assert reconciled == dict.fromkeys(days, True)

    # The same command against a healthy gateway completes the day it could not read.
    healthy = gateway_factory(days=3, sessions_per_day=30, seed=8)
    again = backfill(days[0], days[-1], env=cli_env(healthy.url, healthy.token, data))
    assert again.returncode == 0, again.stderr
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        loaded = {
            r[0]
            for r in con.execute(
                "SELECT session_id FROM sessions WHERE start_day = ?", [failing]
            ).fetchall()
        }
    assert loaded == set(truth.session_ids(failing, now=NOW))
    # ... which differs from the content kept meanwhile: the check above could tell them apart.
    assert content_hash(data / "warehouse.duckdb", day=failing) != failing_before
