"""Tamper evidence: a manifest per day with the SHA-256 of each of its files, chained by day.

``manifests/start_day=D.json`` names the raw file and every lake file of day D with its digest,
and the digest of the manifest of the closest earlier day. Changing any file, or any earlier
manifest, breaks a digest that ``verify`` recomputes. When a day is synced again its manifest is
rewritten and the chain is re-linked forward from it, so legitimate re-syncs verify clean; every
rewrite is appended to ``manifests/history.jsonl`` with the digests before and after.

Days may be recorded in any order (a backfill cut into runs writes them as its runs finish): a
day is linked to the closest earlier day recorded so far, and a later day recorded before it is
re-linked to it. Re-linking must never launder a change made by hand, so a later day is re-linked
only while the chain still holds there: its link matches the manifest before it as found, or that
manifest was rewritten from the linked one by this module (the history says so; the state a run
killed half-way through a re-link leaves). Where the chain is broken it is left broken, for
``verify`` to report.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from filelock import FileLock

from hoop_sessions.extract.raw import raw_path
from hoop_sessions.paths import file_sha256, table_path
from hoop_sessions.tempfiles import write_atomic

log = logging.getLogger(__name__)

GENESIS = "0" * 64
HISTORY = "history.jsonl"


def manifest_dir(data_dir: Path) -> Path:
    return data_dir / "manifests"


def manifest_file(data_dir: Path, day: date) -> Path:
    return manifest_dir(data_dir) / f"start_day={day.isoformat()}.json"


def manifest_days(data_dir: Path) -> list[date]:
    days = []
    for path in sorted(manifest_dir(data_dir).glob("start_day=*.json")):
        days.append(date.fromisoformat(path.stem.removeprefix("start_day=")))
    return days


def _day_files(data_dir: Path, day: date) -> dict[str, Path]:
    files = {"raw": raw_path(data_dir / "raw", day)}
    from hoop_sessions.build import schema  # Arrow: only where a day's files are hashed

    for table in schema.DAY_TABLES:
        files[f"lake/{table.name}"] = table_path(data_dir / "lake", table.name, day)
    return files


def _encode(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: on disk before the rename, so a crash after the rename
    never leaves an empty or partial manifest, and the rename itself on disk after."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


def _append_history(folder: Path, entry: dict[str, Any]) -> None:
    with open(folder / HISTORY, "ab") as fh:
        fh.write(orjson.dumps(entry) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def _rewrites(folder: Path) -> dict[str, dict[str, str]]:
    """Per day, after -> before of every rewrite the history records (a line cut short by a
    crash, or not JSON, is skipped: it proves nothing)."""
    rewrites: dict[str, dict[str, str]] = defaultdict(dict)
    try:
        lines = (folder / HISTORY).read_bytes().splitlines()
    except FileNotFoundError:
        return rewrites
    for line in lines:
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("before") and entry.get("after"):
            rewrites[str(entry.get("start_day"))][str(entry["after"])] = str(entry["before"])
    return rewrites


def _manifest(
    day: date, files: dict[str, str], previous: tuple[date, str] | None
) -> dict[str, Any]:
    return {
        "start_day": day.isoformat(),
        "files": files,
        "previous_day": previous[0].isoformat() if previous else None,
        "previous_manifest_sha256": previous[1] if previous else GENESIS,
    }


def record_day(data_dir: Path, day: date) -> None:
    """Write day's manifest from its current files and re-link the chain after it.

    Relinking rewrites later days' manifests, so writers (a CLI backfill beside a Dagster run,
    two runs of a backfill cut into runs) take an exclusive lock on the manifest folder for the
    duration. The lock is the operating system's: it holds between processes of one machine, not
    between machines that share a store.
    """
    folder = manifest_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # A new FileLock per call: its own open file, so that two threads of one process exclude
    # each other as two processes do (flock locks belong to the open file).
    with FileLock(folder / ".lock"):
        _record_day(data_dir, day)


def _link_holds(
    linked: object,
    found: tuple[date, str] | None,
    rewrites: Callable[[], dict[str, dict[str, str]]],
) -> bool:
    """Whether a later day's link still holds: it names the manifest found before it, or one
    that manifest was rewritten from by ``record_day`` (possibly several rewrites back). The
    history is read only for a link that does not name the manifest found."""
    if found is None:
        return linked == GENESIS
    day, digest = found
    if linked == digest:
        return True
    earlier = rewrites().get(day.isoformat(), {})
    seen: set[str] = set()
    while digest not in seen:
        if linked == digest:
            return True
        seen.add(digest)
        if digest not in earlier:
            return False
        digest = earlier[digest]
    return False


def _record_day(data_dir: Path, day: date) -> None:
    folder = manifest_dir(data_dir)
    files = {
        name: file_sha256(path) for name, path in _day_files(data_dir, day).items() if path.exists()
    }
    # Read once, and only if a link does not name the manifest found before it.
    rewrites = cache(lambda: _rewrites(folder))

    previous: tuple[date, str] | None = None  # the chain as written now
    found: tuple[date, str] | None = None  # the manifest before, as it was found on disk
    for d in sorted(set(manifest_days(data_dir)) | {day}):
        path = manifest_file(data_dir, d)
        old = path.read_bytes() if path.exists() else None
        doc: dict[str, Any] = orjson.loads(old) if old is not None else {}
        if old is not None and not _link_holds(
            doc.get("previous_manifest_sha256"), found, rewrites
        ):
            log.warning(
                "the tamper-evidence chain is broken at %s: its manifest does not link to the "
                "manifest before it as found; the link is kept as it is, for "
                "`hoop-sessions verify` to report",
                d,
            )
            if d > day:
                return  # re-linking the days after it would hide the break
            if d < day:
                previous = found = (d, _sha256(old))
                continue
            # The day recorded now: its files as they are now, its link as it was.
            new_doc = {
                **_manifest(d, files, None),
                **{k: doc.get(k) for k in ("previous_day", "previous_manifest_sha256")},
            }
        else:
            # Unchanged for a day before ``day`` whose link holds as found; re-linked where a
            # run was killed half-way through a re-link, and for every day after ``day``.
            new_doc = _manifest(d, files if d == day else doc["files"], previous)
        new = _encode(new_doc)
        if new != old:
            # The history first: a crash between the two leaves a rewrite that never happened
            # in the history, never a manifest that the history cannot explain.
            _append_history(
                folder,
                {
                    "at": datetime.now(UTC).isoformat(),
                    "start_day": d.isoformat(),
                    "before": _sha256(old) if old is not None else None,
                    "after": _sha256(new),
                },
            )
            _write(path, new)
        previous = (d, _sha256(new))
        if old is not None:
            found = (d, _sha256(old))


@dataclass(frozen=True)
class Finding:
    day: date
    problem: str


def verify(data_dir: Path, start: date, end: date) -> tuple[list[date], list[Finding]]:
    """Recompute every digest of the days in [start, end]; return the days checked and problems."""
    findings: list[Finding] = []
    checked: list[date] = []
    previous: tuple[date, str] | None = None
    for d in manifest_days(data_dir):
        raw = manifest_file(data_dir, d).read_bytes()
        if d > end:
            break
        if d >= start:
            checked.append(d)
            doc = orjson.loads(raw)
            expected_prev = previous[1] if previous else GENESIS
            if doc.get("previous_manifest_sha256") != expected_prev:
                findings.append(
                    Finding(
                        d,
                        "chain broken: the previous day's manifest changed since this one was written",
                    )
                )
            paths = _day_files(data_dir, d)
            for name, digest in sorted(doc.get("files", {}).items()):
                path = paths.get(name)
                if path is None or not path.exists():
                    findings.append(Finding(d, f"{name} is missing"))
                elif file_sha256(path) != digest:
                    findings.append(
                        Finding(d, f"{name} changed: its SHA-256 differs from the manifest")
                    )
            for name, path in paths.items():
                if name not in doc.get("files", {}) and path.exists():
                    findings.append(Finding(d, f"{name} exists but is not in the manifest"))
        previous = (d, hashlib.sha256(raw).hexdigest())
    return checked, findings
