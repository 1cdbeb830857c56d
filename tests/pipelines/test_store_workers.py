"""Dagster runs on workers with no disk that outlives them: each run in a new working directory and
a new instance, the data on a store (``file://`` here; tests/s3 runs the S3 protocol)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance

from tests.pipelines.conftest import Hoop, days_ago


def worker(hoop: Hoop, monkeypatch: pytest.MonkeyPatch, store: Path, work: Path) -> Hoop:
    monkeypatch.setenv("HOOP_DATA_DIR", store.as_uri())
    monkeypatch.setenv("HOOP_WORK_DIR", str(work))
    return Hoop(hoop.gateway, hoop.config, work, DagsterInstance.ephemeral())


def published(store: Path) -> list[tuple]:
    with duckdb.connect(str(store / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT session_id, start_day, status FROM sessions ORDER BY ALL"
        ).fetchall()


def test_a_run_on_a_fresh_worker_does_what_the_same_run_on_a_kept_worker_does(
    hoop_factory, monkeypatch, tmp_path
):
    hoop = hoop_factory()
    first, middle, last = days_ago(4), days_ago(3), days_ago(2)
    gets = {}
    for name, second_pod in (("kept", "pod-1"), ("fresh", "pod-2")):
        store = tmp_path / name / "store"
        one = worker(hoop, monkeypatch, store, tmp_path / name / "pod-1")
        assert one.materialize(first=first, last=middle).success
        hoop.gets()
        # The second run: on the same pod (its working directory kept), or on a new one that
        # has only the store.
        two = worker(hoop, monkeypatch, store, tmp_path / name / second_pod)
        assert two.materialize(first=first, last=last).success
        gets[name] = hoop.gets()
    assert gets["fresh"] == gets["kept"]
    assert published(tmp_path / "fresh" / "store") == published(tmp_path / "kept" / "store")
    held = {day for _, day, _ in published(tmp_path / "fresh" / "store")}
    assert held == {first, middle, last}
