"""The backfill against the local gateway over real HTTP, compared with what the gateway serves."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import orjson
import pytest

from hoop_sessions.extract.values import parse_time
from hoop_sessions.simulator import export_truth
from tests.conftest import FIRST_DAY, NOW, RUN_TIME_COLUMNS, table_contents

DAYS = 3
LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)


def run_cli(*args: str, gateway, data_dir: Path, extra_env: dict[str, str] | None = None):
    env = {
        **os.environ,
        "HOOP_API_URL": gateway.url,
        "HOOP_API_TOKEN": gateway.token,
        "HOOP_DATA_DIR": str(data_dir),
        "HOOP_RETRY_MAX_SECONDS": "60",
        "HOOP_TIMEOUT_SECONDS": "10",
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "hoop_sessions", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def truth_by_day(gateway, tmp_path: Path) -> dict:
    path = tmp_path / "truth.jsonl"
    export_truth(gateway.config, path, now=NOW)
    days: dict = {}
    for line in path.read_bytes().splitlines():
        record = orjson.loads(line)
        day = parse_time(record["start_date"], "start_date").date()
        if FIRST_DAY <= day <= LAST_DAY:
            days.setdefault(day, {})[record["id"]] = record
    return days


@pytest.fixture
def synced(gateway_factory, tmp_path):
    gateway = gateway_factory(days=DAYS + 1, sessions_per_day=60, seed=11)
    data_dir = tmp_path / "data"
    done = run_cli(
        "backfill",
        "--start",
        str(FIRST_DAY),
        "--end",
        str(LAST_DAY),
        gateway=gateway,
        data_dir=data_dir,
    )
    assert done.returncode == 0, done.stderr
    return gateway, data_dir, done


def test_backfill_holds_every_session_the_gateway_serves_exactly_once_per_day(synced, tmp_path):
    gateway, data_dir, _ = synced
    truth = truth_by_day(gateway, tmp_path)
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        for day in (FIRST_DAY + timedelta(days=i) for i in range(DAYS)):
            ids = [
                r[0]
                for r in con.execute(
                    "SELECT session_id FROM sessions WHERE start_day = ?", [day]
                ).fetchall()
            ]
            rejected = {
                r[0]
                for r in con.execute(
                    "SELECT session_id FROM rejects WHERE start_day = ? AND stage <> 'stream'",
                    [day],
                ).fetchall()
            }
            assert len(ids) == len(set(ids)), f"duplicates on {day}"
            assert set(ids) | rejected == set(truth[day]), day
            assert not set(ids) & rejected
        reconciled = con.execute(
            "SELECT bool_and(reconciled), count(*) FROM day_reconciliation"
        ).fetchone()
        assert reconciled == (True, DAYS)


def test_backfilled_fields_equal_the_gateway_records_and_payloads_are_byte_equal(synced, tmp_path):
    gateway, data_dir, _ = synced
    truth = {
        sid: rec for day in truth_by_day(gateway, tmp_path).values() for sid, rec in day.items()
    }
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT session_id, start_date, end_date, status, user_email, connection, exit_code, "
            "verb, review_status FROM sessions"
        ).fetchall()
        assert rows
        for sid, start, end, status, user, connection, exit_code, verb, review_status in rows:
            rec = truth[sid]
            assert start == parse_time(rec["start_date"], "start_date")
            assert end == (parse_time(rec["end_date"], "end_date") if rec.get("end_date") else None)
            assert (status, user, connection, exit_code, verb) == (
                rec["status"],
                rec["user"],
                rec["connection"],
                rec.get("exit_code"),
                rec["verb"],
            )
            assert review_status == ((rec.get("review") or {}).get("status"))
        checked = 0
        for sid, rec in truth.items():
            stream = rec.get("event_stream")
            if not isinstance(stream, list) or (len(stream) == 1 and isinstance(stream[0], str)):
                continue
            got = con.execute(
                "SELECT event_type, payload FROM session_events WHERE session_id = ? ORDER BY seq",
                [sid],
            ).fetchall()
            if not got and sid not in {r[0] for r in rows}:
                continue  # rejected sessions are checked above
            assert got == [(kind, base64.b64decode(data)) for _, kind, data in stream], sid
            checked += 1
        assert checked > 0


def test_running_the_backfill_again_changes_no_row(synced):
    gateway, data_dir, _ = synced
    warehouse = data_dir / "warehouse.duckdb"
    before = table_contents(warehouse, ignore=RUN_TIME_COLUMNS)
    again = run_cli(
        "backfill",
        "--start",
        str(FIRST_DAY),
        "--end",
        str(LAST_DAY),
        gateway=gateway,
        data_dir=data_dir,
    )
    assert again.returncode == 0, again.stderr
    # Days already loaded and final are skipped; days with open sessions are read again (past
    # the rolling window, by the ids of those sessions, without listing the day).
    reported = [line for line in again.stdout.splitlines() if line[:10].count("-") == 2]
    assert len(reported) == DAYS, again.stdout
    assert all(("listed" in line or "skipped" in line) for line in reported), again.stdout
    assert table_contents(warehouse, ignore=RUN_TIME_COLUMNS) == before
    redo = run_cli(
        "backfill",
        "--start",
        str(FIRST_DAY),
        "--end",
        str(LAST_DAY),
        "--redo",
        gateway=gateway,
        data_dir=data_dir,
    )
    assert redo.returncode == 0, redo.stderr
    assert redo.stdout.count(": listed ") == DAYS  # every day was synced again, none skipped
    assert table_contents(warehouse, ignore=RUN_TIME_COLUMNS) == before


def test_a_backfill_logs_progress_lines_when_not_on_a_terminal(synced):
    _, _, done = synced
    lines = [line for line in done.stderr.splitlines() if " done: " in line]
    assert len(lines) == DAYS
    last = lines[-1]
    for figure in (f"days {DAYS}/{DAYS}", "sessions ", "requests/s", "retries", "ETA"):
        assert figure in last, (figure, last)


def test_a_backfill_draws_a_progress_bar_on_a_terminal(gateway_factory, tmp_path):
    import pty

    gateway = gateway_factory(days=2, sessions_per_day=20, seed=12)
    leader, follower = pty.openpty()
    env = {
        **os.environ,
        "HOOP_API_URL": gateway.url,
        "HOOP_API_TOKEN": gateway.token,
        "HOOP_DATA_DIR": str(tmp_path / "data"),
        "TERM": "xterm",
        "COLUMNS": "160",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hoop_sessions",
            "backfill",
            "--start",
            str(FIRST_DAY),
            "--end",
            str(FIRST_DAY),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=follower,
        timeout=300,
    )
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    assert proc.returncode == 0
    text = screen.decode("utf-8", "replace")
    assert "━" in text or "█" in text  # rich's bar
    assert "requests/s" in text and "ETA" in text
