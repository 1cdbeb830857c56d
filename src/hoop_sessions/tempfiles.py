"""Files written aside and renamed into place, and the ones a killed run left behind.

Every file of a day is written as ``.<name>.<pid>.tmp`` (the raw file also as
``.<name>.<pid>.bodies``) beside ``<name>``, then renamed over it, so a reader sees the old file
or the new one. A run killed half-way leaves its temporary file; a raw day's can be gigabytes.
Each writer removes the temporary files of the file it is about to replace that are stale: their
process is gone and they have not been written to for ``STALE_AFTER`` seconds. The age matters
when the data directory is shared between machines or containers, where a live writer's process
id means nothing here.

``write_atomic`` and ``atomic_file`` are the one way a file is replaced: written aside, flushed to
disk, renamed over the old one, and the rename itself flushed to disk with its directory, so a
crash at any point leaves the old file or the new one, never an empty or partial one.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

STALE_AFTER = 3600.0  # seconds without a write
_ASIDE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?:tmp|bodies)$")


def aside(path: Path) -> Path:
    """Where this process writes ``path`` before renaming it into place; the stale temporary
    files of ``path`` are removed first."""
    remove_stale(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_atomic(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace ``path`` with ``data`` (see above); ``private`` makes it readable by the owner only."""
    with atomic_file(path, private=private) as out:
        out.write(data)


@contextmanager
def atomic_file(path: Path, *, private: bool = False) -> Iterator[BinaryIO]:
    """A file to write ``path`` through: on leaving the block it is flushed to disk and renamed
    over ``path``; an exception inside the block removes it and leaves ``path`` as it was."""
    tmp = aside(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
        if private:
            os.fchmod(fd, 0o600)  # a file of the same name left earlier keeps its mode
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        rename_into_place(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_file(path: Path) -> None:
    """Flush ``path``, written and closed by someone else, to disk."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def rename_into_place(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` (already on disk) over ``path``, then flush the directory so that the rename
    survives a power cut too."""
    os.replace(tmp, path)
    fsync_directory(path.parent)


def fsync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        log.info(
            "removed %s (%d bytes), left by process %d that ended %.0f s ago or more",
            candidate,
            size,
            pid,
            idle,
        )
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
