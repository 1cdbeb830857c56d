"""Fixtures of the compliance tests: warehouses built from hoop records through the real
flatten-and-load path (``hoop_sessions.sync.ingest.ingest_records``), and a headless Chromium."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import duckdb
import pytest

from hoop_sessions.compliance.rules import get_rule, run_rule

from .hoop_records import Record, name_of
from .mixed_dataset import mixed_records

SYNCED_AT = dt.datetime(2025, 3, 8, 2, 0, tzinfo=dt.UTC)

Load = Callable[[Iterable[Record]], Path]
Flagged = Callable[..., set[str]]


def _ingest(records: Iterable[Record], data_dir: Path) -> Path:
    # Imported here so that the tests that need no warehouse still run while ingest is missing.
    from hoop_sessions.sync.ingest import ingest_records

    return ingest_records(records, data_dir=data_dir, synced_at=SYNCED_AT)


@pytest.fixture
def load(tmp_path: Path) -> Load:
    """Load hoop records into a fresh data directory; returns the warehouse path."""
    runs = iter(range(1_000))

    def _load(records: Iterable[Record]) -> Path:
        return _ingest(list(records), tmp_path / f"data-{next(runs)}")

    return _load


@pytest.fixture
def flagged() -> Flagged:
    """Run a rule on a warehouse (read-only, as analysts do); the names of the sessions it flags."""

    def _flagged(warehouse: Path, rule_id: str, **params: object) -> set[str]:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            result = run_rule(con, get_rule(rule_id), params)
        ids = [row[result.columns.index("session_id")] for row in result.rows]
        assert len(ids) == len(set(ids)), f"{rule_id} returned a session twice"
        return {name_of(i) for i in ids}

    return _flagged


@pytest.fixture(scope="session")
def mixed_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding a few days of varied sessions: at least one finding per rule."""
    data_dir = tmp_path_factory.mktemp("mixed") / "data"
    _ingest(mixed_records(), data_dir)
    return data_dir


@pytest.fixture
def writable_warehouse(mixed_data_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the mixed warehouse, for tests that write to it."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copyfile(mixed_data_dir / "warehouse.duckdb", copy)
    return copy


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """A headless Chromium; installed with apt-get when missing (once, needs root and network)."""
    if found := _find_chromium():
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and apt-get is unavailable to install it (no root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Test workers may get here together: one installs, the others wait for it and find it.
    lock_path = Path(tempfile.gettempdir()) / "hoop-sessions-chromium-install.lock"
    with open(lock_path, "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if not _find_chromium():
            for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
                done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
                if done.returncode != 0:
                    pytest.skip(
                        f"could not install chromium ({' '.join(command)}): {done.stderr[-400:]}"
                    )
    found = _find_chromium()
    if not found:
        pytest.skip("apt-get installed chromium but no chromium executable is on PATH")
    return found
