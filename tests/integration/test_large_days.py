"""A day whose events are few but large: one 100 MiB stream, in 534 events of 192 KiB.

DuckDB holds a transaction's rows in memory until they fill a row group (122,880 rows); the
day's payload and text (200 MiB) then do not fit the load's memory limit at commit. The load rolls
back and tries again under a higher limit; past half the machine's memory it says so, and the day
keeps what it held.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hoop_sessions.errors import LoadMemoryError
from hoop_sessions.simulator import SimulatorConfig, serve
from hoop_sessions.warehouse import load
from tests.conftest import FIRST_DAY, NOW
from tests.integration.test_backfill import run_cli

MIB = 1 << 20
STREAM_BYTES = 100 * MIB
SESSIONS = 200


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    """(the data directory, the finished backfill) of a day with the stream."""
    data = tmp_path_factory.mktemp("large-day")
    config = SimulatorConfig(
        start=FIRST_DAY,
        now=NOW,
        days=1,
        sessions_per_day=SESSIONS,
        # Over 4,096 events: a retry on the connection whose commit failed kept 4,096 distinct.
        events_per_session=30,
        large_streams=1,
        large_stream_bytes=STREAM_BYTES,
    )
    with serve(config) as gateway:
        done = run_cli(
            "backfill",
            "--start",
            str(FIRST_DAY),
            "--end",
            str(FIRST_DAY),
            gateway=gateway,
            data_dir=data,
        )
        yield data, done


EVENTS = (
    "SELECT session_id, seq, event_type, payload_bytes, sha256(payload), sha256(payload_text) "
    "FROM {source} ORDER BY session_id, seq"
)


def events(con: duckdb.DuckDBPyConnection, source: str = "session_events") -> list[tuple[Any, ...]]:
    """Every event of the day, with digests of its payload and text, in a stable order."""
    return con.execute(EVENTS.format(source=source)).fetchall()


def lake_events(lake: Path) -> list[tuple[Any, ...]]:
    files = sorted((lake / "session_events").glob(f"start_day={FIRST_DAY}/*.parquet"))
    assert len(files) == 1, files
    with duckdb.connect() as con:
        return events(con, f"read_parquet('{files[0]}')")


def stream_bytes(rows: list[tuple[Any, ...]]) -> int:
    """Bytes of payload of the session with the most."""
    per_session: dict[str, int] = {}
    for session, _, _, size, _, _ in rows:
        per_session[session] = per_session.get(session, 0) + (size or 0)
    return max(per_session.values())


@pytest.fixture(scope="module")
def lake_rows(synced: tuple[Path, Any]) -> list[tuple[Any, ...]]:
    """The events of the synced day's lake file (a load only reads the lake)."""
    data, done = synced
    assert done.returncode == 0, done.stderr
    return lake_events(data / "lake")


def test_a_day_with_a_100_mib_stream_is_synced_whole(
    synced: tuple[Path, Any], lake_rows: list[tuple[Any, ...]]
) -> None:
    data, done = synced
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        sessions = con.execute("SELECT count(*) FROM sessions").fetchone()
        loaded = events(con)
    assert sessions == (SESSIONS,)
    assert stream_bytes(loaded) == STREAM_BYTES
    assert loaded == lake_rows


def test_a_day_that_does_not_fit_the_limit_is_loaded_again_under_a_higher_one(
    synced: tuple[Path, Any],
    lake_rows: list[tuple[Any, ...]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lake, path = synced[0] / "lake", str(tmp_path / "w.duckdb")
    with caplog.at_level(logging.WARNING, logger=load.__name__):
        counts = load.load_day(lambda: duckdb.connect(path), lake, FIRST_DAY)
    with duckdb.connect(path, read_only=True) as con:  # as a reader finds it: checkpointed
        loaded = events(con)
    assert loaded == lake_rows
    assert stream_bytes(loaded) == STREAM_BYTES
    assert counts["sessions"] == SESSIONS
    assert counts["session_events"] == len(loaded)
    retries = [r.getMessage() for r in caplog.records if "loading it again" in r.getMessage()]
    assert retries, "the day fitted under the first limit: this test no longer shows a retry"
    assert f"did not fit in {load.LOAD_MEMORY_LIMIT_MB} MB" in retries[0]


def test_past_the_ceiling_the_load_says_so_and_the_day_keeps_what_it_held(
    synced: tuple[Path, Any],
    lake_rows: list[tuple[Any, ...]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The warehouse the backfill loaded the day into, which the failed load must leave as it is.
    lake, path = synced[0] / "lake", str(tmp_path / "w.duckdb")
    shutil.copyfile(synced[0] / "warehouse.duckdb", path)
    with duckdb.connect(path, read_only=True) as con:
        before = events(con)
    monkeypatch.setattr(load, "_memory_ceiling_mb", lambda: load.LOAD_MEMORY_LIMIT_MB)
    with pytest.raises(LoadMemoryError) as failed:
        load.load_day(lambda: duckdb.connect(path), lake, FIRST_DAY)
    with duckdb.connect(path, read_only=True) as con:
        after = events(con)
    message = str(failed.value)
    assert str(FIRST_DAY) in message
    assert f"did not fit in {load.LOAD_MEMORY_LIMIT_MB} MB of DuckDB memory" in message
    assert "half of this machine's memory" in message
    assert after == before == lake_rows


@pytest.mark.parametrize(
    ("files", "expected_mb"),
    [
        ({"memory.max": "2000000000\n"}, 1000),  # cgroup v2: a pod limited to 2 GB
        ({"memory/memory.limit_in_bytes": "1000000000\n"}, 500),  # cgroup v1
        ({"memory.max": "100000000\n"}, load.LOAD_MEMORY_LIMIT_MB),  # never below the first limit
    ],
)
def test_the_ceiling_is_half_of_a_containers_memory_limit(
    tmp_path: Path, files: dict[str, str], expected_mb: int
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert load._memory_ceiling_mb(tmp_path) == expected_mb


@pytest.mark.parametrize("files", [{}, {"memory.max": "max\n"}])
def test_without_a_container_limit_the_ceiling_is_half_of_the_machine(
    tmp_path: Path, files: dict[str, str]
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert load._memory_ceiling_mb(tmp_path) == machine // 2 // 1_000_000
