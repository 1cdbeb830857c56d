"""Files written aside and renamed into place, and the ones a killed run left behind.

Every file of a day is written as ``.<name>.<pid>.tmp`` (the raw file also as
``.<name>.<pid>.bodies``) beside ``<name>``, then renamed over it, so a reader sees the old file
or the new one. A run killed half-way leaves its temporary file; a raw day's can be gigabytes.
Each writer removes the temporary files of the file it is about to replace that are stale: their
process is gone and they have not been written to for ``STALE_AFTER`` seconds. The age matters
when the data directory is shared between machines or containers, where a live writer's process
id means nothing here.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger(__name__)

STALE_AFTER = 3600.0  # seconds without a write
_ASIDE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?:tmp|bodies)$")


def aside(path: Path) -> Path:
    """Where this process writes ``path`` before renaming it into place; the stale temporary
    files of ``path`` are removed first."""
    remove_stale(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_stale(path: Path, *, now: float | None = None) -> list[Path]:
    """Remove the stale temporary files of ``path`` (see above); returns the ones removed."""
    if not path.parent.is_dir():
        return []
    now = time.time() if now is None else now
    removed = []
    for candidate in path.parent.iterdir():
        match = _ASIDE.match(candidate.name)
        if match is None or match["name"] != path.name:
            continue
        pid = int(match["pid"])
        try:
            idle = now - candidate.stat().st_mtime
        except FileNotFoundError:
            continue
        if pid == os.getpid() or idle < STALE_AFTER or _alive(pid):
            continue
        try:
            size = candidate.stat().st_size
            candidate.unlink()
        except FileNotFoundError:
            continue
        log.info("removed %s (%d bytes), left by process %d that ended %.0f s ago or more",
                 candidate, size, pid, idle)
        removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
