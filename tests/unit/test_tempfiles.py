"""Temporary files left by killed runs are removed by the next writer of the same file, and only
when their process is gone and they have not been written to for an hour."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hoop_sessions.tempfiles import STALE_AFTER, aside, remove_stale


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
