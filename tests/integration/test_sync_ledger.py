"""The sync ledger in the life of a nightly job: nothing loaded is lost, nothing missed stays missed.

Real HTTP against gateways on loopback: the simulator where its data plays the scenario, and the
scripted gateway of the reliability suite where a test needs a record to change, a session to
answer 404 once, or the gateway's clock to run behind the machine's.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hoop_sessions.compliance.rules import get_rule, run_rule
from hoop_sessions.config import Settings
from hoop_sessions.simulator import Dataset
from hoop_sessions.sync.ledger import Ledger
from hoop_sessions.sync.run import nightly_days, sync_days
from tests.conftest import settings_for as shared_settings_for
from tests.records import b64, session_record
from tests.reliability.conftest import backfill, cli_env, run_cli
from tests.reliability.hostile import HostileGateway, Reply, error_reply

TODAY = datetime.now(UTC).date()


def sid(n: int) -> str:
    return f"0b9f6a3c-1111-4222-8333-{n:012d}"


def at(day: date, hour: int, minute: int = 0) -> str:
    return datetime.combine(day, time(hour, minute), UTC).isoformat().replace("+00:00", "Z")


def record(n: int, day: date, **overrides: Any) -> dict[str, Any]:
    """A closed session of ``day`` without a review, with two events."""
    base = session_record(
        id=sid(n),
        start_date=at(day, 10, n % 60),
        end_date=at(day, 11, n % 60),
        review=None,
        event_stream=[[0.5, "i", b64(b"select 1;")], [1.0, "o", b64(b"1 row")]],
    )
    base.update(overrides)
    return base


def settings_for(gateway: HostileGateway, data_dir: Path, **overrides: Any) -> Settings:
    """The shared test settings, with quick retries: the scripted failures here are permanent."""
    return shared_settings_for(
        gateway, data_dir, **{"retry_attempts": 2, "timeout_seconds": 5.0, **overrides}
    )


def rows(data_dir: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


@pytest.fixture
def hostile() -> Any:
    with HostileGateway() as gateway:
        yield gateway


# -- one bad answer never deletes a loaded session -----------------------------------------------


@pytest.mark.parametrize(
    ("answer", "cause"),
    [
        (error_reply(404, "not found"), "gone from the gateway since"),
        (error_reply(403, "user is not allowed to access this session"), "403"),
        (Reply(200, b"<html><body>maintenance</body></html>", "text/html"), "not JSON"),
    ],
    ids=["404", "403", "html-page-with-200"],
)
def test_a_loaded_session_that_answers_badly_on_a_re_read_keeps_its_rows_and_events(
    hostile, tmp_path, answer, cause
):
    day = TODAY - timedelta(days=10)  # past the rolling window: read again by id while open
    still_open = record(1, day, status="open", end_date=None, exit_code=None)
    hostile.add_day(day, [still_open, record(2, day)])
    settings = settings_for(hostile, tmp_path)
    assert sync_days(settings, [day]).ok
    before = rows(tmp_path, "SELECT session_id, seq, payload FROM session_events ORDER BY ALL")
    assert [r[0] for r in before].count(sid(1)) == 2

    hostile.bodies[sid(1)] = answer
    result = sync_days(settings, [day])

    assert not result.failed and not result.ok
    [item] = result.incomplete[day]
    assert sid(1) in item and cause in item and "previous copy kept" in item
    assert (
        rows(tmp_path, "SELECT session_id, seq, payload FROM session_events ORDER BY ALL") == before
    )
    assert rows(tmp_path, "SELECT count(*) FROM rejects WHERE session_id = ?", sid(1)) == [(0,)]
    assert rows(
        tmp_path, "SELECT reconciled, complete, sessions_failing FROM day_reconciliation"
    ) == [(True, False, 1)]
    entry = Ledger(tmp_path).get(day)
    assert entry is not None and entry.sessions[sid(1)].stale_since is not None

    # The gateway answers again: the session is read, and the run is complete.
    del hostile.bodies[sid(1)]
    hostile.records[sid(1)] = record(1, day)
    again = sync_days(settings, [day])
    assert again.ok and not again.incomplete
    assert rows(tmp_path, "SELECT status, is_final FROM sessions WHERE session_id = ?", sid(1)) == [
        ("done", True)
    ]


# -- finality that holds ------------------------------------------------------------------------


def test_a_jit_session_revoked_while_connected_is_read_until_it_closes_and_its_late_events_found(
    hostile, tmp_path
):
    """hoop's revocation sets status done without closing the connection
    (gateway/transport/plugins/review/review.go): the session records on until the client leaves."""
    day = TODAY - timedelta(days=5)
    now = datetime.now(UTC)
    revoke_at = now - timedelta(hours=2)
    started = datetime.combine(day, time(22), UTC)
    after_revoke = (revoke_at - started).total_seconds() + 60
    review = {
        "id": "aa9f6a3c-1111-4222-8333-000000000001",
        "type": "jit",
        "access_duration": 4 * 3600 * 10**9,
        "status": "REVOKED",
        "revoke_at": revoke_at.isoformat().replace("+00:00", "Z"),
        "created_at": at(day, 21, 50),
        "review_groups_data": [],
    }
    connected = record(
        1,
        day,
        start_date=at(day, 22),
        end_date=None,
        status="done",
        exit_code=None,
        review=review,
        event_stream=[[1.0, "i", b64(b"kubectl get pods")]],
    )
    hostile.add_day(day, [connected])
    settings = settings_for(hostile, tmp_path)
    assert sync_days(settings, [day]).ok
    assert rows(tmp_path, "SELECT is_final FROM sessions") == [(False,)]
    plan = nightly_days(settings)
    assert day in plan.days

    closed = copy.deepcopy(connected)
    closed.update(end_date=at(TODAY, 0, 5), exit_code=0)
    closed["event_stream"].append([after_revoke, "i", b64(b"kubectl delete pod api-0")])
    hostile.add_day(day, [closed])
    assert sync_days(settings, plan.days, relist=plan.relist).ok

    assert rows(tmp_path, "SELECT is_final, event_count FROM sessions") == [(True, 2)]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        found = run_rule(con, get_rule("activity_after_revoke"))
    assert [r[found.columns.index("session_id")] for r in found.rows] == [sid(1)]


def test_an_approval_that_arrives_after_forty_days_is_picked_up(hostile, tmp_path):
    day = TODAY - timedelta(days=45)
    pending = {
        "id": "aa9f6a3c-1111-4222-8333-000000000002",
        "type": "onetime",
        "access_duration": 0,
        "status": "PENDING",
        "revoke_at": None,
        "created_at": at(day, 9),
        "review_groups_data": [],
    }
    waiting = record(
        1, day, status="open", end_date=None, exit_code=None, review=pending, event_stream=[]
    )
    hostile.add_day(day, [waiting, record(2, day)])
    settings = settings_for(hostile, tmp_path, sync_start_date=day)
    assert sync_days(settings, [day]).ok

    ran = copy.deepcopy(waiting)
    approved = at(TODAY - timedelta(days=3), 9)
    ran["review"].update(status="EXECUTED", revoke_at=approved)
    ran.update(status="done", end_date=at(TODAY - timedelta(days=3), 10), exit_code=0)
    hostile.add_day(day, [ran, record(2, day)])
    plan = nightly_days(settings)
    task = next(t for t in plan.todo if t.day == day)
    assert "not final" in task.reason and not task.relist
    result = sync_days(settings, plan.days, relist=plan.relist)

    assert result.ok
    assert rows(
        tmp_path, "SELECT review_status, is_final FROM sessions WHERE session_id = ?", sid(1)
    ) == [("EXECUTED", True)]


# -- closed on the gateway's clock --------------------------------------------------------------


def test_a_day_is_not_read_before_the_margin_past_its_end_on_the_gateway_clock(hostile, tmp_path):
    yesterday = TODAY - timedelta(days=1)
    hostile.add_day(yesterday, [record(1, yesterday)])
    # The gateway's clock says 00:05 of today: yesterday ended five minutes ago there.
    gateway_midnight = datetime.combine(TODAY, time(0, 5), UTC)
    hostile.clock_offset = gateway_midnight - datetime.now(UTC)

    result = sync_days(settings_for(hostile, tmp_path), [yesterday])

    assert result.not_closed == [yesterday] and not result.ok
    assert not [p for p in hostile.paths() if p.startswith("/api/sessions")]


def test_a_day_read_soon_after_its_end_is_listed_again_and_gains_a_late_session(hostile, tmp_path):
    """hoop stamps start_date before slow work and commits the row later
    (gateway/api/session/session.go): a session can appear after its day was first listed."""
    day = TODAY - timedelta(days=6)
    hostile.add_day(day, [record(1, day)])
    settings = settings_for(hostile, tmp_path, rolling_days=0)
    # First read 20 minutes after the day's end, on the gateway's clock.
    hostile.clock_offset = datetime.combine(
        day + timedelta(days=1), time(0, 20), UTC
    ) - datetime.now(UTC)
    assert sync_days(settings, [day]).ok
    hostile.clock_offset = timedelta(0)
    late = record(2, day, start_date=at(day, 23, 59))
    hostile.add_day(day, [record(1, day), late])

    plan = nightly_days(settings)
    task = next(t for t in plan.todo if t.day == day)
    assert task.relist and "within" in task.reason
    assert sync_days(settings, plan.days, relist=plan.relist).ok

    assert rows(tmp_path, "SELECT session_id FROM sessions ORDER BY 1") == [(sid(1),), (sid(2),)]
    assert day not in nightly_days(settings).days


# -- catch-up and exit statuses through the command --------------------------------------------


def test_one_sync_catches_up_six_missed_nights_then_reads_only_what_is_new(
    gateway_factory, tmp_path
):
    first = TODAY - timedelta(days=10)
    gateway = gateway_factory(
        start=first, days=10, sessions_per_day=15, seed=5, now=datetime.now(UTC)
    )
    env = cli_env(gateway.url, gateway.token, tmp_path, HOOP_SYNC_START_DATE=str(first))
    # Three nights ran, then the host was down for six.
    done = backfill(first, first + timedelta(days=2), env=env)
    assert done.returncode == 0, done.stderr

    caught_up = run_cli("sync", env=env)

    assert caught_up.returncode == 0, caught_up.stderr
    expected = {d for d in (first + timedelta(days=i) for i in range(10))}
    loaded = {r[0] for r in rows(tmp_path, "SELECT DISTINCT start_day FROM sync_windows")}
    assert loaded == expected
    dataset = Dataset(gateway.config)
    served = sum(len(dataset.session_ids(d, now=datetime.now(UTC))) for d in expected)
    assert rows(tmp_path, "SELECT count(*), count(DISTINCT session_id) FROM sessions") == [
        (served, served)
    ]
    status = run_cli("status", env=env)
    assert status.returncode == 0, status.stdout + status.stderr


def test_two_always_failing_gets_load_the_rest_exit_1_and_a_plain_rerun_reads_them(
    gateway_factory, tmp_path
):
    day = TODAY - timedelta(days=8)
    shape = {"start": day, "days": 1, "sessions_per_day": 20, "seed": 9, "now": datetime.now(UTC)}
    ids = Dataset(gateway_factory(**shape).config).session_ids(day, now=shape["now"])
    broken = gateway_factory(**shape, failing_sessions=frozenset(ids[:2]))
    env = cli_env(broken.url, broken.token, tmp_path, HOOP_RETRY_ATTEMPTS="2")

    failed = backfill(day, day, env=env)

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "2 item(s) in 1 day(s) are incomplete" in failed.stderr
    assert (
        all(f"session {s}" in failed.stderr for s in ids[:2]) and "Traceback" not in failed.stderr
    )
    held = {r[0] for r in rows(tmp_path, "SELECT session_id FROM sessions")}
    assert held == set(ids[2:])
    status = run_cli("status", env=env)
    assert status.returncode == 1 and all(s in status.stdout for s in ids[:2])

    healthy = gateway_factory(**shape)
    again = backfill(day, day, env=cli_env(healthy.url, healthy.token, tmp_path))

    assert again.returncode == 0, again.stderr
    assert {r[0] for r in rows(tmp_path, "SELECT session_id FROM sessions")} == set(ids)
    assert rows(tmp_path, "SELECT complete FROM day_reconciliation") == [(True,)]


def test_a_command_run_waits_for_another_writer_of_the_data_directory_and_says_whom(
    gateway_factory, tmp_path
):
    """A Dagster run (here: another process holding the writer lock) and a command-line run on the
    same data directory take turns; the one that waits too long stops naming the holder."""
    import subprocess
    import sys

    day = TODAY - timedelta(days=3)
    gateway = gateway_factory(start=day, days=1, sessions_per_day=5, now=datetime.now(UTC))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys; from pathlib import Path; from hoop_sessions.lock import writer_lock\n"
                "with writer_lock(Path(sys.argv[1]), what='Dagster run of 2026-11-30'):\n"
                "    print('held', flush=True); sys.stdin.readline()\n"
            ),
            str(tmp_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        env = cli_env(gateway.url, gateway.token, tmp_path, HOOP_WAREHOUSE_LOCK_TIMEOUT="1")
        waited = backfill(day, day, env=env)
        assert waited.returncode == 1
        assert "Dagster run of 2026-11-30" in waited.stderr and "Traceback" not in waited.stderr
        assert not (tmp_path / "warehouse.duckdb").exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    done = backfill(day, day, env=cli_env(gateway.url, gateway.token, tmp_path))
    assert done.returncode == 0, done.stderr


def test_the_run_summary_names_the_record_warnings_of_a_day(hostile, tmp_path):
    day = TODAY - timedelta(days=4)
    newer = record(1, day, identity_type="sidecar")  # a value a newer gateway sends
    hostile.add_day(day, [newer, record(2, day)])
    done = backfill(day, day, env=cli_env(hostile.url, hostile.token, tmp_path))
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if "record warning(s)" in line)
    assert line.startswith(str(day)) and 'identity_type="sidecar"' in line
