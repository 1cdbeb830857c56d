"""Session contents (typed commands, their output) are readable by the data directory's owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.conftest import FIRST_DAY
from tests.reliability.conftest import backfill, cli_env


def backfill_with_umask(gateway, data_dir: Path, umask: int):
    return backfill(
        FIRST_DAY,
        FIRST_DAY,
        env=cli_env(gateway.url, gateway.token, data_dir),
        preexec_fn=lambda: os.umask(umask),
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def readable_by_others(data_dir: Path) -> list[str]:
    """Files under ``data_dir`` that a user other than the owner could read: the file and every
    directory from ``data_dir`` down to it let others in (what is above is the installer's)."""
    exposed = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        dirs = [data_dir / p for p in path.relative_to(data_dir).parents]
        if mode(path) & stat.S_IROTH and all(mode(d) & stat.S_IXOTH for d in dirs):
            exposed.append(str(path.relative_to(data_dir)))
    return exposed


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_a_new_data_directory_and_warehouse_are_readable_by_their_owner_only(
    gateway_factory, tmp_path, umask
):
    gateway = gateway_factory(days=1, sessions_per_day=10)
    data_dir = tmp_path / "var" / "hoop-sessions"
    done = backfill_with_umask(gateway, data_dir, umask)
    assert done.returncode == 0, done.stderr
    assert mode(data_dir) == 0o700
    assert mode(data_dir / "warehouse.duckdb") == 0o600
    assert readable_by_others(data_dir) == []


def test_session_contents_in_an_existing_data_directory_are_not_readable_by_others(
    gateway_factory, tmp_path
):
    gateway = gateway_factory(days=1, sessions_per_day=10)
    data_dir = tmp_path / "hoop-sessions"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    done = backfill_with_umask(gateway, data_dir, 0o022)
    assert done.returncode == 0, done.stderr
    assert readable_by_others(data_dir) == []
