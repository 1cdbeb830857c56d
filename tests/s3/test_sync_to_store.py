"""A backfill into ``s3://`` over the real S3 protocol, through the command users run.

The same simulated gateway is backfilled once into a local data directory and once into a bucket
of the loopback S3 server; the store's lake, read back by following its commit documents, must be
the local lake. A second run in a new, empty working directory continues from the store alone,
and a third run goes through a proxy that breaks some of its uploads.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hoop_sessions.build import schema
from hoop_sessions.simulator import SimulatorConfig, serve
from hoop_sessions.store import ObjectStore
from tests.conftest import FIRST_DAY, NOW
from tests.reliability.conftest import backfill, cli_env, content_hash, run_cli
from tests.s3.lake import (
    commits,
    committed_keys,
    lake_objects,
    local_lake,
    store_lake,
)
from tests.s3.proxy import FaultProxy
from tests.s3.server import S3Server

DAYS = [FIRST_DAY + timedelta(days=i) for i in range(3)]
DAY_TABLES = [t.name for t in schema.DAY_TABLES]


@pytest.fixture(scope="module")
def gateway() -> Iterator[Any]:
    config = SimulatorConfig(
        seed=23, days=len(DAYS) + 1, sessions_per_day=40, start=FIRST_DAY, now=NOW
    )
    with serve(config) as running:
        yield running


@pytest.fixture(scope="module")
def local_run(gateway: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same backfill into a local data directory."""
    data_dir = tmp_path_factory.mktemp("local") / "data"
    done = backfill(DAYS[0], DAYS[-1], env=cli_env(gateway.url, gateway.token, data_dir))
    assert done.returncode == 0, done.stderr
    return data_dir


def store_env(
    gateway: Any, server: S3Server, url: str, work: Path, endpoint: str | None = None
) -> dict[str, str]:
    return {
        **cli_env(gateway.url, gateway.token, Path(url)),
        "HOOP_DATA_DIR": url,
        "HOOP_WORK_DIR": str(work),
        **server.env(endpoint),
    }


def open_store(server: S3Server, url: str, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    return ObjectStore(url)


@pytest.fixture(scope="module")
def store_run(gateway: Any, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The backfill into a bucket; its ``s3://`` URL."""
    url = s3_server.new_bucket()
    work = tmp_path_factory.mktemp("store-run") / "work"
    done = backfill(DAYS[0], DAYS[-1], env=store_env(gateway, s3_server, url, work))
    assert done.returncode == 0, done.stderr
    return url


def assert_commits_name_exactly_the_lake(store: ObjectStore) -> None:
    docs = commits(store)
    assert sorted(docs) == DAYS
    for doc in docs.values():
        assert sorted(doc["tables"]) == sorted(DAY_TABLES)
        for entry in doc["tables"].values():
            info = store.info(entry["key"])
            assert info is not None and info.size == entry["size"], entry["key"]
    assert lake_objects(store) == committed_keys(store)


def test_the_lake_read_back_from_the_store_equals_the_local_runs_table_by_table(
    store_run: str, local_run: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(s3_server, store_run, monkeypatch)
    assert_commits_name_exactly_the_lake(store)
    from_store, local = store_lake(store), local_lake(local_run / "lake")
    for table in DAY_TABLES:
        assert from_store[table] == local[table], table
    assert len(from_store["sessions"]) >= len(DAYS) * 30  # the comparison is not of empty tables


def test_the_backfill_publishes_a_warehouse_with_every_day_and_the_compliance_findings(
    store_run: str,
    local_run: Path,
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = open_store(s3_server, store_run, monkeypatch)
    published = tmp_path / "published.duckdb"
    assert store.get_file("warehouse.duckdb", published), "no warehouse.duckdb on the store"
    expected = content_hash(local_run / "warehouse.duckdb")
    assert not expected["compliance_findings"].startswith(("absent", "0 rows"))
    assert content_hash(published) == expected


def test_an_analyst_queries_the_published_warehouse_on_the_store_from_an_empty_machine(
    store_run: str, local_run: Path, gateway: Any, s3_server: S3Server, tmp_path: Path
) -> None:
    # DuckDB attaches warehouse.duckdb straight from the bucket, over the S3 protocol.
    statement = "SELECT start_day, count(*) AS n FROM sessions GROUP BY 1 ORDER BY 1"
    env = {**store_env(gateway, s3_server, store_run, tmp_path / "analyst"), "HOOP_API_TOKEN": ""}
    done = run_cli("sql", statement, "--format", "csv", env=env)
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(local_run / "warehouse.duckdb"), read_only=True) as con:
        expected = con.execute(statement).fetchall()
    assert len(expected) == len(DAYS)
    lines = done.stdout.strip().splitlines()
    assert lines[1:] == [f"{day},{n}" for day, n in expected]


def test_a_rerun_in_an_empty_working_directory_skips_every_done_day_and_restores_the_warehouse(
    store_run: str,
    local_run: Path,
    gateway: Any,
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = gateway.stats.requests
    work = tmp_path / "fresh-work"
    done = backfill(DAYS[0], DAYS[-1], env=store_env(gateway, s3_server, store_run, work))
    assert done.returncode == 0, done.stderr
    after = gateway.stats.requests
    # No day is listed again; only the sessions that were not final are read again, by id, as a
    # rerun in the first working directory would.
    assert after.get("list", 0) == before.get("list", 0)
    with duckdb.connect(str(local_run / "warehouse.duckdb"), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM sessions WHERE NOT is_final").fetchone()
    assert row is not None
    assert after.get("get", 0) - before.get("get", 0) <= row[0]

    # The warehouse on the store (what readers attach) and the one the run restored locally
    # hold every day, as the local run's does.
    store = open_store(s3_server, store_run, monkeypatch)
    published = tmp_path / "published.duckdb"
    assert store.get_file("warehouse.duckdb", published), "no warehouse.duckdb on the store"
    expected = content_hash(local_run / "warehouse.duckdb")
    got = content_hash(published)
    for table in DAY_TABLES:
        assert got[table] == expected[table], table
    restored = [p for p in work.rglob("warehouse.duckdb") if p.stat().st_size > 0]
    assert restored, "the rerun restored no warehouse into its working directory"
    for path in restored:
        local = content_hash(path)
        assert {t: local[t] for t in DAY_TABLES} == {t: expected[t] for t in DAY_TABLES}, path


def test_a_backfill_whose_uploads_partly_fail_ends_complete_and_equal(
    local_run: Path,
    gateway: Any,
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = s3_server.new_bucket()
    with FaultProxy((s3_server.host, s3_server.port)) as proxy:
        proxy.inject("PUT", "slowdown", every=5)
        proxy.inject("PUT", "drop-half", nth={3, 17})
        proxy.inject("PUT", "internal", nth={8})
        done = backfill(
            DAYS[0], DAYS[-1], env=store_env(gateway, s3_server, url, tmp_path / "work", proxy.url)
        )
    assert done.returncode == 0, done.stderr
    assert proxy.counts.broken_total("PUT") >= 4
    assert proxy.counts.forwarded["PUT"] > proxy.counts.broken_total("PUT")

    store = open_store(s3_server, url, monkeypatch)
    assert_commits_name_exactly_the_lake(store)
    from_store, local = store_lake(store), local_lake(local_run / "lake")
    for table in DAY_TABLES:
        assert from_store[table] == local[table], table
