"""HOOP_DATA_DIR as a store URL: what a run publishes, and a run with no local state continuing.

These use a ``file://`` store (the same seam and the same code as ``s3://``, without
a server); tests/s3/ runs the S3 protocol against a loopback server.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from hoop_sessions.build import schema
from hoop_sessions.sync import mirror, stages
from hoop_sessions.sync.run import backfill_days, nightly_days, publish_warehouse, sync_days
from tests.conftest import FIRST_DAY, NOW, settings_for

DAYS = [FIRST_DAY + timedelta(days=i) for i in range(3)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def gateway(gateway_factory):
    return gateway_factory(days=4, sessions_per_day=25, seed=5)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path


def backfill(gateway, work: Path, store_dir: Path, **overrides):
    settings = settings_for(gateway, work, data_url=store_dir.as_uri(), **overrides)
    plan = backfill_days(settings, DAYS[0], DAYS[-1], now=NOW)
    result = sync_days(settings, plan.days, now=NOW, relist=plan.relist)
    assert not result.failed
    return settings, plan, result


def objects(store_dir: Path, prefix: str) -> set[str]:
    return {
        p.relative_to(store_dir).as_posix() for p in (store_dir / prefix).rglob("*") if p.is_file()
    }


def test_each_day_is_published_with_a_commit_that_names_exactly_its_objects(
    gateway, tmp_path, store_dir
):
    backfill(gateway, tmp_path / "work", store_dir)
    for day in DAYS:
        lake = orjson.loads((store_dir / mirror.commit_key(day)).read_bytes())
        assert set(lake["tables"]) == {t.name for t in schema.DAY_TABLES}
        for table, entry in lake["tables"].items():
            stored = store_dir / entry["key"]
            assert sha256(stored) == entry["sha256"] and stored.stat().st_size == entry["size"]
            assert objects(store_dir, f"lake/{table}/start_day={day}") == {entry["key"]}
        raw = orjson.loads((store_dir / mirror.commit_key(day, "raw")).read_bytes())["raw"]
        assert sha256(store_dir / raw["key"]) == raw["sha256"]
        assert objects(store_dir, f"raw/start_day={day}") == {raw["key"]}
    # The ledger and the tamper-evidence manifests are on the store too.
    assert {f"ledger/start_day={d}.json" for d in DAYS} <= objects(store_dir, "ledger")
    assert {f"manifests/start_day={d}.json" for d in DAYS} <= objects(store_dir, "manifests")


def test_a_run_in_an_empty_working_directory_plans_what_the_last_run_would_do_next(
    gateway, tmp_path, store_dir
):
    first, _, _ = backfill(gateway, tmp_path / "first", store_dir)
    later = NOW + timedelta(days=10)
    where_it_ran = backfill_days(first, DAYS[0], DAYS[-1], now=later)
    fresh = settings_for(gateway, tmp_path / "second", data_url=store_dir.as_uri())
    plan = backfill_days(fresh, DAYS[0], DAYS[-1], now=later)
    assert plan == where_it_ran
    # Days done are skipped; what is left is read by id (open sessions), never listed again.
    assert plan.done and all(not task.relist for task in plan.todo)


def test_a_fresh_working_directory_reads_open_sessions_by_id_from_the_stored_raw_file(
    gateway, tmp_path, store_dir
):
    backfill(gateway, tmp_path / "first", store_dir)
    later = NOW + timedelta(days=10)  # out of the rolling window: only open sessions are read
    fresh = settings_for(gateway, tmp_path / "second", data_url=store_dir.as_uri())
    plan = nightly_days(fresh, now=later)
    by_id = [t for t in plan.todo if not t.relist and t.day in DAYS]
    if not by_id:
        pytest.skip("the simulated days hold no open session")
    before = gateway.stats.requests.get("list", 0)
    result = sync_days(fresh, [t.day for t in by_id], now=later, relist=set())
    assert not result.failed
    # Read by id from the stored raw file: no listing of those days again.
    assert gateway.stats.requests.get("list", 0) == before
    assert all(d.extract is not None and d.extract.reused > 0 for d in result.days)


def test_a_republished_day_replaces_its_objects_and_removes_what_a_killed_upload_left(
    gateway, tmp_path, store_dir
):
    backfill(gateway, tmp_path / "work", store_dir)
    day = DAYS[1]
    orphan = store_dir / f"lake/sessions/start_day={day}/part-0123456789abcdef.parquet"
    orphan.write_bytes(b"half an upload")
    before = orjson.loads((store_dir / mirror.commit_key(day)).read_bytes())
    settings = settings_for(gateway, tmp_path / "work", data_url=store_dir.as_uri())
    result = sync_days(settings, [day], now=NOW, reuse=False)
    assert not result.failed
    after = orjson.loads((store_dir / mirror.commit_key(day)).read_bytes())
    assert after["committed_at"] > before["committed_at"]
    assert not orphan.exists()
    for table, entry in after["tables"].items():
        assert objects(store_dir, f"lake/{table}/start_day={day}") == {entry["key"]}


def test_the_stages_of_a_worker_take_the_files_other_workers_published(
    gateway, tmp_path, store_dir
):
    backfill(gateway, tmp_path / "first", store_dir)
    fresh = settings_for(gateway, tmp_path / "second", data_url=store_dir.as_uri())
    build = stages.plan_build(fresh, DAYS, redo=False)
    assert build.missing == {}  # the raw files came from the store
    load = stages.plan_load(fresh, DAYS, redo=True)
    assert load.todo == DAYS and load.missing == {}
    for day in DAYS:
        commit = orjson.loads((store_dir / mirror.commit_key(day)).read_bytes())
        for table, entry in commit["tables"].items():
            local = fresh.lake_dir / table / f"start_day={day}" / "part-0.parquet"
            assert sha256(local) == entry["sha256"]


def test_a_store_url_with_a_scheme_of_no_store_is_a_clear_error(tmp_path):
    from hoop_sessions.config import Settings
    from hoop_sessions.errors import ConfigError

    settings = Settings.from_env(
        {"HOOP_DATA_DIR": "ftp://host/data", "HOOP_WORK_DIR": str(tmp_path)}
    )
    with pytest.raises(ConfigError, match="ftp"):
        _ = settings.store


def warehouse_days(path: Path) -> dict:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        return dict(con.execute("SELECT start_day, count(*) FROM sessions GROUP BY ALL").fetchall())


def test_a_fresh_working_directory_restores_the_published_warehouse_with_every_day(
    gateway, tmp_path, store_dir
):
    first, _, _ = backfill(gateway, tmp_path / "first", store_dir)
    published = orjson.loads((store_dir / "warehouse.json").read_bytes())
    assert sha256(store_dir / "warehouse.duckdb") == sha256(first.warehouse_path)
    fresh = settings_for(gateway, tmp_path / "second", data_url=store_dir.as_uri())
    mirror.hydrate(fresh)
    assert warehouse_days(fresh.load_path) == warehouse_days(first.warehouse_path)
    assert set(warehouse_days(fresh.load_path)) == set(DAYS)
    # A run from there publishes the next generation.
    result = sync_days(fresh, [DAYS[0]], now=NOW, reuse=False)
    assert not result.failed
    assert (
        orjson.loads((store_dir / "warehouse.json").read_bytes())["generation"]
        == published["generation"] + 1
    )


def test_a_store_without_its_warehouse_has_it_rebuilt_from_the_lake(gateway, tmp_path, store_dir):
    first, _, _ = backfill(gateway, tmp_path / "first", store_dir)
    (store_dir / "warehouse.duckdb").unlink()
    (store_dir / "warehouse.json").unlink()
    fresh = settings_for(gateway, tmp_path / "second", data_url=store_dir.as_uri())
    mirror.hydrate(fresh)
    assert warehouse_days(fresh.load_path) == warehouse_days(first.warehouse_path)


def test_a_writer_never_overwrites_a_warehouse_another_writer_published_since_it_restored(
    gateway, tmp_path, store_dir
):
    from hoop_sessions.errors import StoreError

    backfill(gateway, tmp_path / "first", store_dir)
    one = settings_for(gateway, tmp_path / "one", data_url=store_dir.as_uri())
    two = settings_for(gateway, tmp_path / "two", data_url=store_dir.as_uri())
    mirror.hydrate(two)  # two starts from the published warehouse...
    assert not sync_days(one, [DAYS[0]], now=NOW, reuse=False).failed  # ...one publishes meanwhile
    after_one = sha256(store_dir / "warehouse.duckdb")
    with pytest.raises(StoreError, match="another writer"):
        publish_warehouse(two, [DAYS[1]])  # two's run ends
    assert sha256(store_dir / "warehouse.duckdb") == after_one


def test_a_long_run_publishes_on_the_way(gateway, tmp_path, store_dir):
    backfill(gateway, tmp_path / "work", store_dir, publish_minutes=1e-9)
    # One publish after each of the three days, and one at the end of the run.
    assert orjson.loads((store_dir / "warehouse.json").read_bytes())["generation"] == len(DAYS) + 1


def test_the_analyst_commands_read_the_warehouse_published_on_the_store(
    gateway, tmp_path, store_dir
):
    import os
    import subprocess
    import sys

    first, _, _ = backfill(gateway, tmp_path / "work", store_dir)
    env = {
        **os.environ,
        "HOOP_DATA_DIR": store_dir.as_uri(),
        "HOOP_WORK_DIR": str(tmp_path / "analyst"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hoop_sessions",
            "sql",
            "SELECT count(*) AS n FROM sessions",
            "--format",
            "csv",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["n", str(sum(warehouse_days(first.warehouse_path).values()))]
    # Nothing was copied to the analyst's side: DuckDB read the store.
    assert not (tmp_path / "analyst" / "warehouse.duckdb").exists()


def test_gs_and_az_urls_are_served_by_the_same_seam(monkeypatch):
    # Constructed only: no Google or Azure endpoint can be reached from the tests.
    from hoop_sessions.store import ObjectStore

    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "account")
    assert type(ObjectStore("gs://bucket/prefix")._store).__name__ == "GCSStore"
    azure = ObjectStore("az://container/prefix")
    assert type(azure._store).__name__ == "AzureStore" and azure.root == "container/prefix"


def test_the_process_that_reads_hoop_moves_days_to_and_from_the_store_without_arrow(
    gateway, tmp_path, store_dir
):
    # It publishes every day a run builds: Arrow there would cost it some 80 MiB (measured).
    import subprocess
    import sys

    backfill(gateway, tmp_path / "first", store_dir)
    code = (
        "import sys\n"
        "from datetime import date\n"
        "from pathlib import Path\n"
        "from hoop_sessions.sync import mirror\n"
        "from hoop_sessions.config import Settings\n"
        "s = Settings(data_dir=Path(sys.argv[1]), data_url=sys.argv[2])\n"
        "day = date.fromisoformat(sys.argv[3])\n"
        "mirror.hydrate(s, warehouse=False)\n"
        "mirror.pull_days(s, [day], lake=True)\n"
        "mirror.publish_day(s, day)\n"
        "print('pyarrow' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "second"), store_dir.as_uri(), str(DAYS[0])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]
    assert (
        tmp_path / "second" / "lake" / "sessions" / f"start_day={DAYS[0]}" / "part-0.parquet"
    ).exists()
