"""Killing a load at any moment leaves the old day or the new day, never a mix."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime

import duckdb

from hoop_sessions.extract.raw import raw_path
from hoop_sessions.sync.ingest import ingest_records
from tests.conftest import table_contents
from tests.records import b64, session_record

DAY = date(2026, 11, 1)
SYNCED = datetime(2026, 11, 10, tzinfo=UTC)
KILLS = 12

REBUILD = """
import sys
from pathlib import Path
from datetime import date
from hoop_sessions.config import Settings
from hoop_sessions.sync.run import rebuild_day
rebuild_day(Settings(data_dir=Path(sys.argv[1])), date.fromisoformat(sys.argv[2]))
"""


def version(tag: str, n: int = 400) -> list[dict]:
    out = []
    for i in range(n):
        out.append(
            session_record(
                id=f"0b9f6a3c-1111-4222-8333-{i:012d}",
                start_date=f"2026-11-01T{i % 24:02d}:{i % 60:02d}:00.{i:03d}Z",
                metadata={"version": tag},
                event_stream=[
                    [0.01 * j, "o", b64(f"{tag}-{i}-{j}".encode() * 20)] for j in range(25)
                ],
                review=None,
            )
        )
    return out


def test_a_load_killed_at_random_moments_leaves_old_or_new_day_and_converges(tmp_path):
    data = tmp_path / "data"
    versions = {}
    raws = {}
    for tag in ("A", "B"):
        warehouse = ingest_records(version(tag), data_dir=data, synced_at=SYNCED)
        versions[tag] = table_contents(warehouse)
        raws[tag] = tmp_path / f"raw-{tag}.gz"
        shutil.copy(raw_path(data / "raw", DAY), raws[tag])
    assert versions["A"] != versions["B"]

    rng = random.Random(20261122)
    # Measure one uninterrupted rebuild to spread the kill moments over its whole length.
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", REBUILD, str(data), DAY.isoformat()], check=True)
    length = time.monotonic() - started
    seen = set()
    for k in range(KILLS):
        tag = "AB"[k % 2]
        shutil.copy(raws[tag], raw_path(data / "raw", DAY))
        proc = subprocess.Popen([sys.executable, "-c", REBUILD, str(data), DAY.isoformat()])
        time.sleep(rng.uniform(0.05, length))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        now = table_contents(data / "warehouse.duckdb")
        state = next((t for t, rows in versions.items() if rows == now), None)
        assert state is not None, f"kill {k} left a mix of two versions of the day"
        seen.add(state)
    with duckdb.connect(str(data / "warehouse.duckdb")) as con:
        assert con.execute("SELECT count(DISTINCT session_id) FROM sessions").fetchone()[0] == 400
    shutil.copy(raws["B"], raw_path(data / "raw", DAY))
    subprocess.run([sys.executable, "-c", REBUILD, str(data), DAY.isoformat()], check=True)
    assert table_contents(data / "warehouse.duckdb") == versions["B"]
