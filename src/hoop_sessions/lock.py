"""One writer per data directory: a run that syncs waits while another one writes.

A CLI backfill and a Dagster run started on the same data directory would both replace the same
days' raw and lake files and load the same days into the warehouse. ``writer_lock`` takes an
operating-system lock on ``<data_dir>/.writer.lock`` (``filelock``: released by the kernel when
its process dies, so a killed run never leaves the directory locked). Whoever holds it also
writes who they are to ``<data_dir>/.writer.holder`` (process id, host, command, what it does,
since when), so that a run that must wait can say what it waits for, once, and a run that gives
up can name the run in its way.

The lock is held per process and is re-entrant in the thread that holds it: a sync that calls
another sync entry point does not wait for itself. Other threads of the same process wait like
other processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from filelock import FileLock, Timeout

from hoop_sessions.errors import WriterLockTimeoutError
from hoop_sessions.tempfiles import write_atomic

log = logging.getLogger(__name__)

LOCK_FILE = ".writer.lock"
HOLDER_FILE = ".writer.holder"
DEFAULT_TIMEOUT = 300.0
# Command-line options whose value is not written to the holder file (a simulator's token).
_SECRET_OPTIONS = ("--token", "--api-token")


@contextlib.contextmanager
def writer_lock(data_dir: Path, *, what: str, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Hold the data directory's writer lock for the ``with`` block.

    ``what`` says what this run does (``backfill 2026-11-01..2026-11-30``); it is shown to a run
    that has to wait. When another run holds the lock, this logs once who holds it and waits up to
    ``timeout`` seconds (negative: without limit), then raises ``WriterLockTimeoutError``.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(data_dir / LOCK_FILE, is_singleton=True)
    if lock.is_locked:
        # This thread holds it already (an entry point calling another): count, do not wait.
        with lock.acquire(timeout=0):
            yield
        return
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = read_holder(data_dir)
        waiting = "without a time limit" if timeout < 0 else f"up to {timeout:.0f} s"
        log.warning(
            "%s waits for %s: it is being written by %s; waiting %s",
            what,
            data_dir,
            describe(holder),
            waiting,
        )
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise WriterLockTimeoutError(
                f"{what}: {data_dir} was still being written by {describe(read_holder(data_dir))} "
                f"after {timeout:.0f} s; let that run finish, or raise HOOP_WAREHOUSE_LOCK_TIMEOUT"
            ) from None
        log.info("%s: %s is free now, proceeding", what, data_dir)
    try:
        _write_holder(data_dir, what)
        yield
    finally:
        with contextlib.suppress(OSError):
            (data_dir / HOLDER_FILE).unlink(missing_ok=True)
        lock.release()


def read_holder(data_dir: Path) -> dict[str, Any] | None:
    """Who holds the writer lock, as they wrote it; None when unknown."""
    try:
        holder = orjson.loads((data_dir / HOLDER_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return holder if isinstance(holder, dict) else None


def describe(holder: dict[str, Any] | None) -> str:
    """One line naming a lock holder: what it does, its process and command, since when."""
    if holder is None:
        return "another run (it has not said which)"
    return (
        f"{holder.get('what', 'another run')} (process {holder.get('pid')} on {holder.get('host')}, "
        f"{holder.get('command')!r}, since {holder.get('started_at')})"
    )


def _write_holder(data_dir: Path, what: str) -> None:
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": _command(sys.argv),
        "what": what,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = data_dir / HOLDER_FILE
    try:
        write_atomic(path, orjson.dumps(holder))
    except OSError as exc:
        # Only a description for whoever waits: a full disk must not stop the run here.
        log.info("could not record the writer lock's holder in %s: %s", path, exc)


def _command(argv: list[str]) -> str:
    """The command line, without the value of an option that carries a secret, at most 300 chars."""
    shown: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            shown.append("***")
            hide_next = False
        elif arg in _SECRET_OPTIONS:
            shown.append(arg)
            hide_next = True
        elif arg.startswith(tuple(f"{option}=" for option in _SECRET_OPTIONS)):
            shown.append(arg.split("=", 1)[0] + "=***")
        else:
            shown.append(arg)
    if shown:
        shown[0] = Path(shown[0]).name
    return " ".join(shown)[:300]
