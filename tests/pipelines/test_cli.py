"""`dagster asset materialize` from the command line against the simulator, as operators run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.pipelines.conftest import Hoop, days_ago

REPO = Path(__file__).resolve().parents[2]


def dagster_materialize(
    hoop: Hoop, home: Path, *partition: str
) -> subprocess.CompletedProcess[str]:
    # `dagster asset materialize` takes no -w; it loads the module workspace.yaml names.
    env = {**os.environ, "DAGSTER_HOME": str(home)}  # the test's HOOP_* variables included
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "pipelines.definitions",
            "--select",
            "hoop/raw_sessions*",
            *partition,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_day_then_a_range_materialize_from_the_command_line(hoop: Hoop, tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    first, last = days_ago(2), days_ago(1)

    one = dagster_materialize(hoop, home, "--partition", first.isoformat())

    assert one.returncode == 0, one.stderr[-3000:]
    assert {r[0] for r in hoop.query("SELECT session_id FROM sessions")} | {
        r[0]
        for r in hoop.query(
            "SELECT session_id FROM rejects WHERE session_id IS NOT NULL AND stage <> 'stream'"
        )
    } == hoop.truth(first)
    still_open = hoop.query("SELECT count(*) FROM sessions WHERE NOT is_final")[0][0]
    hoop.gets()

    both = dagster_materialize(hoop, home, "--partition-range", f"{first}...{last}")

    assert both.returncode == 0, both.stderr[-3000:]
    # One run for the range; of the day already loaded, only the sessions that may still change
    # are read again.
    assert hoop.gets() == len(hoop.truth(last)) + still_open
    assert [r[0] for r in hoop.query("SELECT DISTINCT start_day FROM sync_windows ORDER BY 1")] == [
        first,
        last,
    ]
    assert both.stderr.count("RUN_START") == 1
