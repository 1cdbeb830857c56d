"""Ctrl-C and SIGTERM stop a sync cleanly, say which days were kept, and exit 130 / 143."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

FIRST = datetime.now(UTC).date() - timedelta(days=12)
DAYS = 8


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_backfill_says_which_days_were_kept_and_a_rerun_resumes(
    gateway_factory, tmp_path, signum, code
):
    # Slow enough that the run is still going when the signal comes after the first day.
    gateway = gateway_factory(
        start=FIRST, days=DAYS, sessions_per_day=40, seed=3, now=datetime.now(UTC), latency_ms=40
    )
    env = {
        **os.environ,
        "HOOP_API_URL": gateway.url,
        "HOOP_API_TOKEN": gateway.token,
        "HOOP_DATA_DIR": str(tmp_path),
        "HOOP_CONCURRENCY": "1",
    }
    last = FIRST + timedelta(days=DAYS - 1)
    argv = [
        sys.executable,
        "-m",
        "hoop_sessions",
        "backfill",
        "--start",
        str(FIRST),
        "--end",
        str(last),
    ]
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines = []
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line)
        if " done: " in line or not line:
            break
    assert any(" done: " in line for line in lines), "".join(lines)
    process.send_signal(signum)
    _out, err = process.communicate(timeout=120)
    err = "".join(lines) + err

    assert process.returncode == code, err
    assert f"interrupted ({signal.Signals(signum).name})" in err
    assert "run the same command again to resume" in err and "Traceback" not in err
    kept_line = next(line for line in err.splitlines() if "interrupted (" in line)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        loaded = sorted(
            r[0] for r in con.execute("SELECT DISTINCT start_day FROM sync_windows").fetchall()
        )
    assert loaded and len(loaded) < DAYS
    assert f"{len(loaded)} of {DAYS} day(s) were read and loaded" in kept_line

    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    # The days kept are not read again (only a session of them still open is, by id).
    for day in loaded:
        line = next(line for line in rerun.stdout.splitlines() if line.startswith(str(day)))
        assert "skipped" in line or "not listed again" in line, line
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT start_day) FROM sync_windows").fetchone() == (
            DAYS,
        )
