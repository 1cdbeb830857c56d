"""A run killed while writing a day leaves temporary files beside the day's files; the next sync
of that day removes them (they can be as large as the day's raw file)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from hoop_sessions.extract.raw import raw_path
from hoop_sessions.paths import table_path
from hoop_sessions.sync.run import sync_days
from hoop_sessions.tempfiles import STALE_AFTER
from tests.conftest import FIRST_DAY, NOW, settings_for


def test_the_next_sync_of_a_day_removes_what_a_killed_run_left(gateway_factory, tmp_path):
    gateway = gateway_factory(days=1, sessions_per_day=20, seed=6)
    settings = settings_for(gateway, tmp_path)
    assert sync_days(settings, [FIRST_DAY], now=NOW).ok

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    raw = raw_path(settings.raw_dir, FIRST_DAY)
    part = table_path(settings.lake_dir, "sessions", FIRST_DAY)
    left = [
        raw.with_name(f".{raw.name}.{child.pid}.bodies"),
        raw.with_name(f".{raw.name}.{child.pid}.tmp"),
        part.with_name(f".{part.name}.{child.pid}.tmp"),
    ]
    old = time.time() - 2 * STALE_AFTER
    for path in left:
        path.write_bytes(os.urandom(1024))
        os.utime(path, (old, old))

    assert sync_days(settings, [FIRST_DAY], now=NOW, reuse=False).ok

    assert [p.name for p in left if p.exists()] == []
    assert raw.exists() and part.exists()
