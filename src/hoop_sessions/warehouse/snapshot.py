"""Two warehouse files: the writer's copy, which loads change, and the analysts' published snapshot.

DuckDB lets one process write a database file or several processes read it, never both: an analyst
connection held open for hours would make every load wait for it, then fail. So loads write
``<data dir>/.writer/warehouse.duckdb`` (``Settings.load_path``), which no person opens, and at
the end of a run ``publish`` copies it, checkpointed and whole, beside ``warehouse.duckdb``
(``Settings.warehouse_path``) and renames the copy over it. A reader that has the old file open
keeps reading the old file (on POSIX a renamed-over file lives on while it is open); a reader that
connects afterwards gets the new one. Readers never see half a run, and never hold up a load.

A data directory from before the writer's copy existed (or one restored from a published file)
has only ``warehouse.duckdb``: the first writer copies it to the writer's place and goes on from
there (``writer_file``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import duckdb

from hoop_sessions import tempfiles
from hoop_sessions.config import Settings
from hoop_sessions.errors import StorageError
from hoop_sessions.lock import writer_lock
from hoop_sessions.warehouse import load as warehouse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishResult:
    path: Path  # the published file
    bytes: int
    seconds: float


def wal_path(path: Path) -> Path:
    """DuckDB's write-ahead log of the database file ``path``."""
    return path.with_name(path.name + ".wal")


def writer_file(settings: Settings) -> Path:
    """The writer's copy; made first from the published file when only that one exists."""
    target = settings.load_path
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    published = settings.warehouse_path
    if published.exists():
        # A writer of the former layout that was killed left its last commits in the log.
        if wal_path(published).exists():
            _copy_into_place(wal_path(published), wal_path(target))
        _copy_into_place(published, target)
        log.info("the writer's copy of the warehouse was made from %s", published)
    return target


@contextmanager
def connect_writer(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to the writer's copy (waiting for another writer to let go)."""
    with warehouse.connect(
        writer_file(settings), lock_timeout=settings.lock_timeout_seconds
    ) as con:
        yield con


def publish(settings: Settings, *, lock_held: bool = False) -> PublishResult | None:
    """Replace the published file with a copy of the writer's; None when nothing was loaded yet.

    Under the data directory's writer lock (two runs publish one after the other, never an older
    copy over a newer), and with a read-only connection on the writer's copy for the length of the
    copy: DuckDB then lets no process write it, and a read-only connection never writes the file.
    """
    source = settings.load_path
    if not source.exists():
        return None
    target = settings.warehouse_path
    started = time.perf_counter()
    with (
        # lock_held: a run publishing on the way, from a thread of its own, under its lock.
        contextlib.nullcontext()
        if lock_held
        else writer_lock(
            settings.data_dir,
            what="publish of the warehouse",
            timeout=settings.lock_timeout_seconds,
        ),
        _checkpointed(source, lock_timeout=settings.lock_timeout_seconds),
    ):
        # An old writer's log beside the published file belongs to the file being replaced; a
        # reader would replay it onto the new one. Its commits are in the writer's copy.
        try:
            wal_path(target).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(wal_path(target), exc) from exc
        size = _copy_into_place(source, target)
    seconds = time.perf_counter() - started
    log.info("published the warehouse to %s: %.1f MiB in %.2f s", target, size / 2**20, seconds)
    return PublishResult(target, size, seconds)


@contextmanager
def _checkpointed(path: Path, *, lock_timeout: float) -> Iterator[None]:
    """Hold ``path`` read-only with every commit in the file itself (no write-ahead log)."""
    for _ in range(2):
        with warehouse.connect(path, read_only=True, lock_timeout=lock_timeout):
            if not wal_path(path).exists():
                yield
                return
        # A writer that ended without closing left its log: a read-write open replays it, and
        # closing the last connection checkpoints it into the file.
        log.info("%s has a write-ahead log; checkpointing it before the copy", path)
        with warehouse.connect(path, lock_timeout=lock_timeout) as con:
            con.execute("CHECKPOINT")
    raise StorageError(
        path, OSError(f"its write-ahead log {wal_path(path).name} remains after a checkpoint")
    )


def _copy_into_place(source: Path, target: Path) -> int:
    """Copy ``source`` beside ``target``, flush it to disk, rename it over ``target``, flush the
    directory; returns the bytes copied. Readable by the owner only: it holds session contents."""
    try:
        with tempfiles.atomic_file(target, private=True) as copy, source.open("rb") as original:
            _copy_in_kernel(original, copy)
            size = os.fstat(copy.fileno()).st_size
    except OSError as exc:
        raise StorageError(target, exc) from exc
    return size


def _copy_in_kernel(original: BinaryIO, copy: BinaryIO) -> None:
    """The whole file, copied by the kernel (no pass through this process's memory; a reflink
    where the file system has them), else through a buffer."""
    copy.flush()
    try:
        while os.copy_file_range(original.fileno(), copy.fileno(), 1 << 30):
            pass
    except (OSError, AttributeError):  # no copy_file_range here (another OS, another file system)
        original.seek(0)
        copy.seek(0)
        copy.truncate()
        shutil.copyfileobj(original, copy, 1 << 20)
        copy.flush()
