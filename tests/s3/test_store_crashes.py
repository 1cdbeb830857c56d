"""A backfill into ``s3://`` killed with SIGKILL again and again, each run in a new working
directory, ends as an uninterrupted run into the store does.

The store holds an older version of the days first (other sessions altogether, so that a day
mixing two versions cannot go unnoticed). Then `hoop-sessions backfill --redo` is killed:

- at the moments of tests/reliability/test_crashes.py (listing, fetching, Parquet writing, DuckDB
  loading), watched in the run's working directory by the same code (imported from there);
- at moments of publishing that only a store has, counted by the proxy the run's S3 requests pass
  through: in the middle of a day's uploads, between the last upload and the commit document,
  between the commit and the removal of what it replaced, during the warehouse's upload.

Every run starts in an empty working directory, as a fresh container would, so everything it
knows comes from the store. A final run completes. Its lake (as the commit documents name it) and
its published warehouse must equal those of an uninterrupted run into another bucket, and no
object outside the committed ones may remain where a reader could take it for data.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
import pytest

from hoop_sessions.simulator import SimulatorConfig, serve
from hoop_sessions.store import ObjectStore
from tests.conftest import FIRST_DAY, NOW
from tests.reliability.conftest import backfill, cli_env, content_hash
from tests.reliability.test_crashes import (
    DAYS,
    OLD,
    PHASES,
    SHAPE,
    Kill,
    PhaseWatch,
    describe,
    end_session,
    kill_at,
    kill_moments,
    measured_run,
    start_backfill,
    warm_up,
)
from tests.s3.lake import commits, committed_keys, lake_objects, store_lake
from tests.s3.proxy import FaultProxy
from tests.s3.server import S3Server

pytestmark = pytest.mark.reliability

UPLOADS = ("PUT", "POST")  # objects and parts; the start and completion of multipart uploads


def store_env(
    gateway: Any, server: S3Server, url: str, work: Path, proxy: FaultProxy
) -> dict[str, str]:
    return {
        **cli_env(gateway.url, gateway.token, work),
        "HOOP_DATA_DIR": url,
        "HOOP_WORK_DIR": str(work),
        **server.env(proxy.url),
    }


Match = Callable[[str, str], bool]  # (method, path of the request) -> whether it is the one


def uploads(method: str, path: str) -> bool:
    return method in UPLOADS


def commit_of(day: date) -> Match:
    return lambda method, path: (
        method in UPLOADS and path.endswith(f"/lake/_commits/start_day={day}.json")
    )


def removal(method: str, path: str) -> bool:
    # S3's bulk delete (POST /bucket?delete), how the store client removes objects.
    return method == "POST" and path.endswith("?delete")


def warehouse_upload(method: str, path: str) -> bool:
    return method == "PUT" and path.endswith("/warehouse.duckdb")


def warehouse_document(method: str, path: str) -> bool:
    return method == "PUT" and path.endswith("/warehouse.json")


class Tripwire:
    """Watches the requests of the run under way through the proxy; kills the run as it sends
    the ``nth`` request that ``match`` picks (that request never reaches the store)."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.lock = threading.Lock()
        self.seen = 0
        self.match: Match = uploads
        self.nth: int | None = None
        self.pid: int | None = None
        self.killed_on: str | None = None
        proxy.on_request = self

    def arm(self, pid: int | None, match: Match = uploads, nth: int | None = None) -> None:
        with self.lock:
            self.seen, self.pid, self.match, self.nth, self.killed_on = 0, pid, match, nth, None

    def __call__(self, method: str, target: str) -> bool:
        path, _, query = target.partition("?")
        path = unquote(path) + ("?delete" if query.startswith("delete") else "")
        with self.lock:
            if not self.match(method, path):
                return False
            self.seen += 1
            if self.pid is None or self.seen != self.nth:
                return False
            # Named before the kill: the test wakes as the run dies and reads it (under the lock).
            self.killed_on = f"{method} {path.split('/', 3)[-1]}"
            os.kill(self.pid, signal.SIGKILL)
            return True

    def killed(self) -> str | None:
        with self.lock:
            return self.killed_on


@dataclass
class StoreKill:
    aimed: str
    killed_on: str | None  # the request the run was sending when it was killed; None: it finished
    returncode: int | None = None
    requests: tuple[str, ...] = ()  # what the run sent through the proxy, in order
    log_tail: str = ""  # the end of what the run wrote on stderr

    def __repr__(self) -> str:
        if self.killed_on is not None:
            return f"StoreKill(aimed={self.aimed!r}, killed_on={self.killed_on!r})"
        return (
            f"StoreKill(aimed={self.aimed!r}, not killed: exit {self.returncode}, "
            f"{len(self.requests)} request(s): {list(self.requests)}, stderr ends: {self.log_tail!r})"
        )


def kill_in_publishing(
    env: dict[str, str],
    log: Path,
    wire: Tripwire,
    proxy: FaultProxy,
    aimed: str,
    match: Match,
    nth: int,
) -> StoreKill:
    wire.arm(None)
    logged = log.stat().st_size if log.exists() else 0
    sent = len(proxy.counts.log)
    process = start_backfill(env, log)
    try:
        wire.arm(process.pid, match, nth)
        process.wait()
        killed_on = wire.killed()
    finally:
        end_session(process.pid)
        wire.arm(None)
    requests = tuple(f"{method} {target[:100]}" for method, target, _ in proxy.counts.log[sent:])
    tail = log.read_bytes()[logged:].decode(errors="replace")[-3000:]
    return StoreKill(aimed, killed_on, process.returncode, requests, tail)


def published_content(store: ObjectStore, into: Path) -> dict[str, str]:
    assert store.get_file("warehouse.duckdb", into), f"no warehouse.duckdb on {store.url}"
    return content_hash(into)


@dataclass
class Sequence:
    phase_kills: list[Kill]
    store_kills: list[StoreKill]
    uploads: int
    final: subprocess.CompletedProcess[str]
    measured_url: str
    crashed_url: str

    def describe(self) -> str:
        return f"phase kills: {describe(self.phase_kills)}; store kills: {self.store_kills}"


@pytest.fixture(scope="module")
def sequence(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Sequence:
    tmp = tmp_path_factory.mktemp("store-crashes")
    rng = random.Random(20261204)
    log = tmp / "backfills.log"
    works = (tmp / f"work-{i}" for i in range(1000))
    measured_url, crashed_url = s3_server.new_bucket(), s3_server.new_bucket()
    with FaultProxy((s3_server.host, s3_server.port)) as proxy:
        wire = Tripwire(proxy)
        with serve(SimulatorConfig(start=FIRST_DAY, now=NOW, **OLD)) as gateway:
            old = backfill(
                DAYS[0],
                DAYS[-1],
                env=store_env(gateway, s3_server, crashed_url, next(works), proxy),
            )
            assert old.returncode == 0, old.stderr
        with serve(SimulatorConfig(start=FIRST_DAY, now=NOW, **SHAPE)) as gateway:
            warm_up(gateway, tmp / "warm")
            # The uninterrupted run, into a bucket of its own: its phases and its uploads.
            work = next(works)
            wire.arm(None)
            timeline, _ = measured_run(
                store_env(gateway, s3_server, measured_url, work, proxy),
                PhaseWatch(gateway, work),
                log,
            )
            upload_count = wire.seen
            assert upload_count > 20, upload_count

            def env() -> dict[str, str]:
                return store_env(gateway, s3_server, crashed_url, next(works), proxy)

            # Moments of publishing; each run republishes every day (--redo), and its Parquet
            # files differ from the last run's (they say when they were synced), so each commit
            # replaces objects.
            store_kills = [
                kill_in_publishing(env(), log, wire, proxy, aimed, match, nth)
                for aimed, match, nth in (
                    ("the second upload (day 1's raw file)", uploads, 2),
                    ("between a commit and the removal of what it replaced", removal, 1),
                    ("between day 2's lake uploads and its commit", commit_of(DAYS[1]), 1),
                    ("a third into the uploads", uploads, upload_count // 3),
                    ("during the warehouse's upload", warehouse_upload, 1),
                    ("between the warehouse and its document", warehouse_document, 1),
                )
            ]

            phase_kills: list[Kill] = []
            order = sorted(timeline.seen, key=lambda s: timeline.seen[s][0])
            for aimed, after in kill_moments(timeline, 6, rng):
                work = next(works)
                env_of_run = store_env(gateway, s3_server, crashed_url, work, proxy)
                phase_kills.append(
                    kill_at(env_of_run, log, PhaseWatch(gateway, work), order, aimed, after)
                )

            final = backfill(DAYS[0], DAYS[-1], "--redo", env=env())
    done = Sequence(phase_kills, store_kills, upload_count, final, measured_url, crashed_url)
    print(done.describe())
    return done


@pytest.fixture
def stores(
    sequence: Sequence, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> tuple[ObjectStore, ObjectStore]:
    """(the store of the uninterrupted run, the store of the killed runs)."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return ObjectStore(sequence.measured_url), ObjectStore(sequence.crashed_url)


def test_the_kills_landed_in_every_kind_of_moment(sequence: Sequence) -> None:
    # In most phases of a day (listing lasts a few milliseconds a day here, so a kill aimed at
    # it may land in the next phase), and at each moment of publishing aimed at.
    hit = {phase for k in sequence.phase_kills for phase, _ in k.hit}
    assert len(hit & set(PHASES)) >= 3, sequence.describe()
    assert all(k.killed_on is not None for k in sequence.store_kills), sequence.describe()


def test_after_the_kills_a_run_in_a_new_directory_ends_as_the_uninterrupted_run(
    sequence: Sequence, stores: tuple[ObjectStore, ObjectStore], tmp_path: Path
) -> None:
    assert sequence.final.returncode == 0, sequence.final.stderr
    assert "Traceback" not in sequence.final.stderr
    measured, crashed = stores
    assert store_lake(crashed) == store_lake(measured)
    assert published_content(crashed, tmp_path / "crashed.duckdb") == published_content(
        measured, tmp_path / "measured.duckdb"
    )


def test_only_the_objects_the_commits_name_remain_in_the_lake_and_raw_trees(
    sequence: Sequence, stores: tuple[ObjectStore, ObjectStore]
) -> None:
    _, crashed = stores
    assert sorted(commits(crashed)) == DAYS
    assert lake_objects(crashed) == committed_keys(crashed)
    raw_named = set()
    for day in DAYS:
        data = crashed.get_bytes(f"raw/_commits/start_day={day}.json")
        assert data is not None
        raw_named.add(orjson.loads(data)["raw"]["key"])
    assert {k for k in crashed.list("raw") if not k.startswith("raw/_commits/")} == raw_named


def test_no_upload_a_killed_run_left_aside_remains(
    sequence: Sequence, stores: tuple[ObjectStore, ObjectStore]
) -> None:
    _, crashed = stores
    trees = ("lake/", "raw/", "ledger/", "manifests/")
    loose = {k for k in crashed.list("") if not k.startswith(trees)}
    assert loose <= {"warehouse.duckdb", "warehouse.json"}
