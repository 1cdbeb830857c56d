"""Temporary files left by killed runs are removed by the next writer of the same file, and only
when their process is gone and they have not been written to for an hour."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hoop_sessions.tempfiles import STALE_AFTER, aside, atomic_file, remove_stale, write_atomic


@pytest.fixture(scope="module")
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def plant(path: Path, pid: int, kind: str = "tmp", age: float = 2 * STALE_AFTER) -> Path:
    left = path.with_name(f".{path.name}.{pid}.{kind}")
    left.write_bytes(b"x" * 100)
    old = time.time() - age
    os.utime(left, (old, old))
    return left


def test_only_stale_files_of_the_same_target_are_removed(tmp_path: Path, dead_pid: int) -> None:
    target = tmp_path / "sessions.jsonl.gz"
    stale_tmp = plant(target, dead_pid)
    stale_bodies = plant(target, dead_pid, "bodies")
    recent = plant(target, dead_pid + 1_000_000, age=60)  # a dead process, but written a minute ago
    live = plant(target, os.getppid())  # the process that started this test is alive
    other = plant(tmp_path / "part.parquet", dead_pid)
    unrelated = tmp_path / ".sessions.jsonl.gz.notes"
    unrelated.write_text("kept")

    removed = remove_stale(target)

    assert sorted(removed) == sorted([stale_tmp, stale_bodies])
    assert not stale_tmp.exists() and not stale_bodies.exists()
    assert recent.exists() and live.exists() and other.exists() and unrelated.exists()


def test_this_processs_own_file_is_never_removed(tmp_path: Path) -> None:
    target = tmp_path / "part.parquet"
    mine = aside(target)
    mine.write_bytes(b"being written")
    old = time.time() - 2 * STALE_AFTER
    os.utime(mine, (old, old))
    assert remove_stale(target) == []
    assert mine.exists()


def test_a_missing_folder_is_nothing_to_clean(tmp_path: Path) -> None:
    assert remove_stale(tmp_path / "not-yet" / "part.parquet") == []


def test_an_atomic_write_replaces_the_file_and_leaves_nothing_aside(tmp_path: Path) -> None:
    target = tmp_path / "entry.json"
    target.write_bytes(b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.json"]


def test_a_writer_that_fails_half_way_leaves_the_old_file_and_no_temporary_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "warehouse.duckdb"
    target.write_bytes(b"old")

    def killed_half_way() -> None:
        with atomic_file(target) as out:
            out.write(b"half of the new")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        killed_half_way()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]


def test_a_private_file_is_readable_by_its_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "warehouse.duckdb"
    before = os.umask(0o022)
    try:
        write_atomic(target, b"session contents", private=True)
    finally:
        os.umask(before)
    assert target.stat().st_mode & 0o777 == 0o600
