"""Analysts read a published snapshot of the warehouse: they never hold up a load, and never see
half a run.

Real parts: the simulated gateway on loopback, the sync of the library, DuckDB files in tmp_path,
and an analyst in a process of its own that keeps a read-only connection open across runs.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from hoop_sessions.config import Settings
from hoop_sessions.paths import table_path
from hoop_sessions.sync.run import backfill_days, nightly_days, sync_days
from hoop_sessions.warehouse.snapshot import publish, wal_path
from tests.conftest import FIRST_DAY, NOW, settings_for
from tests.integration.test_backfill import run_cli

SERVED_DAYS = 6
# Small: a load that waited for the analyst's lock would fail within two seconds instead of
# hanging the test.
LOCK_TIMEOUT = 2.0

# Answers the sessions per day over its connection when sent "days"; "reconnect" opens the file
# again (what a BI tool's refresh does); end of input closes it.
ANALYST = textwrap.dedent("""
    import sys, duckdb, orjson
    path = sys.argv[1]
    con = duckdb.connect(path, read_only=True)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "reconnect":
            con.close()
            con = duckdb.connect(path, read_only=True)
            print("ready", flush=True)
        else:
            rows = con.execute(
                "SELECT start_day::VARCHAR, count(*) FROM sessions GROUP BY 1 ORDER BY 1"
            ).fetchall()
            print(orjson.dumps(dict(rows)).decode(), flush=True)
    con.close()
""")


# A writer that commits and dies without closing: the commit is in the write-ahead log only.
KILLED_WRITER = textwrap.dedent("""
    import os, sys, duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("CREATE TABLE committed_before_the_kill AS SELECT 42 AS answer")
    os._exit(0)
""")


class Analyst:
    """A process holding a read-only connection to the published warehouse file."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", ANALYST, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._expect("ready")

    def _ask(self, line: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def _expect(self, answer: str) -> None:
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == answer

    def days(self) -> dict[str, int]:
        """Sessions per day, as this connection sees them."""
        answer = orjson.loads(self._ask("days"))
        assert isinstance(answer, dict)
        return answer

    def reconnect(self) -> None:
        assert self._ask("reconnect") == "ready"

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def analyst_factory() -> Iterator[Any]:
    started: list[Analyst] = []

    def start(path: Path) -> Analyst:
        analyst = Analyst(path)
        started.append(analyst)
        return analyst

    yield start
    for analyst in started:
        if analyst.process.poll() is None:
            analyst.process.kill()
            analyst.process.wait()


def days_in(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "SELECT start_day::VARCHAR, count(*) FROM sessions GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return dict(rows)


def settings_of(gateway: Any, tmp_path: Path) -> Settings:
    return settings_for(
        gateway, tmp_path / "data", lock_timeout_seconds=LOCK_TIMEOUT, sync_start_date=FIRST_DAY
    )


def day_text(offset: int) -> str:
    return (FIRST_DAY + timedelta(days=offset)).isoformat()


def test_an_analyst_held_open_through_a_backfill_and_a_nightly_sync_blocks_neither_and_sees_the_new_days_on_reconnecting(
    gateway_factory, analyst_factory, tmp_path, caplog
):
    gateway = gateway_factory(days=SERVED_DAYS, sessions_per_day=20, seed=5)
    settings = settings_of(gateway, tmp_path)
    assert sync_days(settings, [FIRST_DAY], now=NOW).ok
    analyst = analyst_factory(settings.warehouse_path)
    before = analyst.days()
    assert list(before) == [day_text(0)]

    with caplog.at_level(logging.WARNING):
        plan = backfill_days(
            settings, FIRST_DAY + timedelta(days=1), FIRST_DAY + timedelta(days=3), now=NOW
        )
        backfill = sync_days(settings, plan.days, now=NOW, relist=plan.relist)
        assert backfill.ok, backfill.failed
        # The open connection still reads the warehouse as of the run before; a new one the run.
        assert analyst.days() == before
        after_backfill = days_in(settings.warehouse_path)
        assert list(after_backfill) == [day_text(i) for i in range(4)]

        plan = nightly_days(settings, now=NOW)
        nightly = sync_days(settings, plan.days, now=NOW, relist=plan.relist)
        assert nightly.ok, nightly.failed
        assert analyst.days() == before
    assert not [r.getMessage() for r in caplog.records if "is locked by" in r.getMessage()]

    analyst.reconnect()
    seen = analyst.days()
    assert list(seen) == [day_text(i) for i in range(SERVED_DAYS)]
    assert {day: seen[day] for day in after_backfill} == after_backfill
    assert seen == days_in(settings.load_path)  # the run's every load, published whole
    analyst.close()


def test_the_backfill_command_with_an_analyst_held_open_publishes_its_days_with_their_findings(
    gateway_factory, analyst_factory, tmp_path
):
    gateway = gateway_factory(days=4, sessions_per_day=30, seed=12)
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir)
    env = {"HOOP_WAREHOUSE_LOCK_TIMEOUT": str(LOCK_TIMEOUT)}
    first = run_cli(
        "backfill",
        "--start",
        day_text(0),
        "--end",
        day_text(0),
        gateway=gateway,
        data_dir=data_dir,
        extra_env=env,
    )
    assert first.returncode == 0, first.stderr
    analyst = analyst_factory(settings.warehouse_path)
    before = analyst.days()

    done = run_cli(
        "backfill",
        "--start",
        day_text(1),
        "--end",
        day_text(3),
        gateway=gateway,
        data_dir=data_dir,
        extra_env=env,
    )

    assert done.returncode == 0, done.stderr
    assert "is locked by" not in done.stderr
    assert analyst.days() == before
    analyst.reconnect()
    assert list(analyst.days()) == [day_text(i) for i in range(4)]
    findings = "SELECT rule, session_id, found_at FROM compliance_findings ORDER BY ALL"
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        published = con.execute(findings).fetchall()
        new_days = con.execute(
            "SELECT count(*) FROM compliance_findings WHERE start_day > ?", [FIRST_DAY]
        ).fetchone()
    with duckdb.connect(str(settings.load_path), read_only=True) as con:
        assert published == con.execute(findings).fetchall()  # the refresh was published
    assert new_days is not None and new_days[0] > 0
    analyst.close()


def test_a_data_directory_with_only_the_published_file_keeps_its_days_and_its_last_commits(
    gateway_factory, tmp_path
):
    gateway = gateway_factory(days=2, sessions_per_day=15, seed=8)
    settings = settings_of(gateway, tmp_path)
    assert sync_days(settings, [FIRST_DAY], now=NOW).ok
    # The layout of an earlier version: warehouse.duckdb alone, written in place by a writer that
    # was killed after its last commit (the commit is in the write-ahead log only).
    for leftover in settings.load_path.parent.iterdir():
        leftover.unlink()
    settings.load_path.parent.rmdir()
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(settings.warehouse_path)], check=True)
    assert wal_path(settings.warehouse_path).exists()
    first = days_in(settings.warehouse_path)

    assert sync_days(settings, [FIRST_DAY + timedelta(days=1)], now=NOW).ok

    assert settings.load_path.exists()
    assert not wal_path(settings.warehouse_path).exists()  # it would be replayed onto the new file
    published = days_in(settings.warehouse_path)
    assert list(published) == [day_text(0), day_text(1)]
    assert published[day_text(0)] == first[day_text(0)]
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT answer FROM committed_before_the_kill").fetchall() == [(42,)]


def test_a_run_with_a_day_that_fails_to_build_publishes_the_days_it_completed(
    gateway_factory, analyst_factory, tmp_path
):
    gateway = gateway_factory(days=4, sessions_per_day=15, seed=9)
    settings = settings_of(gateway, tmp_path)
    broken = FIRST_DAY + timedelta(days=2)
    # A file where the day's lake directory must go: building that day fails on the disk.
    blocker = table_path(settings.lake_dir, "sessions", broken).parent
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"not a directory")
    days = [FIRST_DAY + timedelta(days=i) for i in range(4)]

    result = sync_days(settings, days, now=NOW)

    assert list(result.failed) == [broken]
    assert [d.day for d in result.days] == [d for d in days if d != broken]
    published = days_in(settings.warehouse_path)  # opens: a whole DuckDB database
    assert list(published) == [d.isoformat() for d in days if d != broken]
    assert published == days_in(settings.load_path)


def test_a_publish_after_a_writer_was_killed_carries_its_last_commit_and_leaves_no_log(
    gateway_factory, tmp_path
):
    gateway = gateway_factory(days=1, sessions_per_day=10, seed=4)
    settings = settings_of(gateway, tmp_path)
    assert sync_days(settings, [FIRST_DAY], now=NOW).ok
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(settings.load_path)], check=True)
    assert wal_path(settings.load_path).exists()

    result = publish(settings)

    assert result is not None and result.bytes == settings.warehouse_path.stat().st_size
    assert not wal_path(settings.load_path).exists()
    assert not wal_path(settings.warehouse_path).exists()
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT answer FROM committed_before_the_kill").fetchall() == [(42,)]


def test_publishing_before_anything_was_loaded_makes_no_warehouse(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert publish(settings) is None
    assert not settings.warehouse_path.exists()
