"""Tamper evidence: a manifest per day with the SHA-256 of each of its files, chained by day.

``manifests/start_day=D.json`` names the raw file and every lake file of day D with its digest,
and the digest of the manifest of the closest earlier day. Changing any file, or any earlier
manifest, breaks a digest that ``verify`` recomputes. When a day is synced again its manifest is
rewritten and the chain is re-linked forward from it, so legitimate re-syncs verify clean; every
rewrite is appended to ``manifests/history.jsonl`` with the digests before and after.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from hoop_sessions import schema
from hoop_sessions.lake import file_sha256, table_path
from hoop_sessions.raw import raw_path
from hoop_sessions.tempfiles import aside

GENESIS = "0" * 64


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
    for table in schema.DAY_TABLES:
        files[f"lake/{table.name}"] = table_path(data_dir / "lake", table.name, day)
    return files


def _encode(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = aside(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _manifest(day: date, files: dict[str, str], previous: tuple[date, str] | None) -> dict[str, Any]:
    return {
        "start_day": day.isoformat(),
        "files": files,
        "previous_day": previous[0].isoformat() if previous else None,
        "previous_manifest_sha256": previous[1] if previous else GENESIS,
    }


def record_day(data_dir: Path, day: date) -> None:
    """Write day's manifest from its current files and re-link the chain after it.

    Relinking rewrites later days' manifests, so writers (a CLI backfill beside a Dagster run)
    take an exclusive lock on the manifest folder for the duration.
    """
    folder = manifest_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            _record_day(data_dir, day)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _record_day(data_dir: Path, day: date) -> None:
    files = {name: file_sha256(path) for name, path in _day_files(data_dir, day).items() if path.exists()}
    days = sorted(set(manifest_days(data_dir)) | {day})
    history = manifest_dir(data_dir) / "history.jsonl"
    previous: tuple[date, str] | None = None
    for d in days:
        path = manifest_file(data_dir, d)
        old = path.read_bytes() if path.exists() else None
        if d < day:
            if old is not None:
                previous = (d, hashlib.sha256(old).hexdigest())
            continue
        doc = orjson.loads(old) if old is not None and d != day else None
        new = _encode(_manifest(d, files if d == day else doc["files"], previous))  # type: ignore[index]
        if new != old:
            _write(path, new)
            with open(history, "ab") as fh:
                fh.write(orjson.dumps({
                    "at": datetime.now(UTC).isoformat(),
                    "start_day": d.isoformat(),
                    "before": hashlib.sha256(old).hexdigest() if old is not None else None,
                    "after": hashlib.sha256(new).hexdigest(),
                }) + b"\n")
        previous = (d, hashlib.sha256(new).hexdigest())


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
                findings.append(Finding(d, "chain broken: the previous day's manifest changed since this one was written"))
            paths = _day_files(data_dir, d)
            for name, digest in sorted(doc.get("files", {}).items()):
                path = paths.get(name)
                if path is None or not path.exists():
                    findings.append(Finding(d, f"{name} is missing"))
                elif file_sha256(path) != digest:
                    findings.append(Finding(d, f"{name} changed: its SHA-256 differs from the manifest"))
            for name, path in paths.items():
                if name not in doc.get("files", {}) and path.exists():
                    findings.append(Finding(d, f"{name} exists but is not in the manifest"))
        previous = (d, hashlib.sha256(raw).hexdigest())
    return checked, findings
