"""The local working directory and the object store behind it (``HOOP_DATA_DIR=s3://...``).

A run works in a local directory as it does on one machine: the reading process streams bodies to
the raw file, the worker writes Parquet, DuckDB loads. This module makes the store the durable copy:

- ``hydrate`` (a run's start): the sync ledger and the tamper-evidence manifests newer on the store
  are pulled, and the warehouse is restored from the store's ``warehouse.duckdb``. A run in a fresh
  container, with no local state, continues where the last run left off.
- ``pull_days``: the raw file (for reuse of what did not change) and the lake files (for a load) of
  days the run needs, as the store's commit of each day names them.
- ``publish_day`` (after a day is built): its raw file and lake files as content-addressed objects
  (``lake/<table>/start_day=D/part-<sha256:16>.parquet``), then the day's commit document
  ``lake/_commits/start_day=D.json`` naming them, then the removal of the objects it replaced. The
  commit is one PUT: a reader following it sees the old day or the new day, and what a killed run
  uploaded before its commit is named by no commit and removed by the next publish of that day.
- ``publish_warehouse`` (a run's end): the loaded DuckDB file as ``warehouse.duckdb`` (an upload
  becomes the object only when whole), then ``warehouse.json`` with its generation, then the ledger files
  the run changed. Ledger last: the store's ledger never says a day is loaded before the store's
  warehouse holds it.

With a local ``HOOP_DATA_DIR`` every function returns at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from hoop_sessions.config import Settings
from hoop_sessions.errors import StoreError
from hoop_sessions.store import ObjectInfo, ObjectStore
from hoop_sessions.tempfiles import write_atomic

log = logging.getLogger(__name__)

STATE = ".mirror"  # in the working directory: what this directory last took from the store
WAREHOUSE_KEY = "warehouse.duckdb"
WAREHOUSE_DOC = "warehouse.json"
PULLED_TREES = ("ledger/", "manifests/")
THREADS = 8  # small files (ledger entries, manifests, commits) moved at once


def commit_key(day: date, kind: str = "lake") -> str:
    """The commit document of a day's lake files (``lake``) or raw file (``raw``)."""
    return f"{kind}/_commits/start_day={day.isoformat()}.json"


def _state_path(settings: Settings, name: str) -> Path:
    return settings.data_dir / STATE / name


def _json(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def _parse(data: bytes | None) -> dict[str, Any] | None:
    """A JSON object, or None for nothing or anything else (a document cut short, say)."""
    if data is None:
        return None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return _parse(path.read_bytes())
    except FileNotFoundError:
        return None


def _write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, _json(doc))


def _store(settings: Settings) -> ObjectStore | None:
    store = settings.store
    if store is not None:
        settings.ensure_data_dir()
    return store


# --- a run's start -------------------------------------------------------------------------------


def hydrate(settings: Settings, *, warehouse: bool = True) -> None:
    """Pull what the store has newer than this working directory; with ``warehouse`` (the
    writers), also the newest warehouse, restored or, when the store has none, rebuilt from the
    lake."""
    store = _store(settings)
    if store is None:
        return
    started = time.monotonic()
    objects: dict[str, ObjectInfo] = {}
    for prefix in PULLED_TREES:
        objects.update(store.list(prefix))
    todo = [obj for obj in objects.values() if _newer(obj, settings.data_dir / obj.key)]
    _pull_all(store, settings.data_dir, todo)
    restored = warehouse and restore_warehouse(settings)
    log.info(
        "%s: %d file(s) of the ledger and manifests pulled%s in %.1f s",
        store.url,
        len(todo),
        ", warehouse restored" if restored else "",
        time.monotonic() - started,
    )
    if warehouse and not settings.load_path.exists() and _ledger_says_loaded(settings):
        rebuild_warehouse(settings)


def _ledger_says_loaded(settings: Settings) -> bool:
    """Whether the store's ledger has a day loaded: a warehouse existed, and is to be rebuilt
    (on a first run there is none to rebuild; its loads make it)."""
    from hoop_sessions.sync.ledger import Ledger

    return any(entry.loaded for entry in Ledger(settings.data_dir).entries())


def _newer(obj: ObjectInfo, local: Path) -> bool:
    try:
        stat = local.stat()
    except FileNotFoundError:
        return True
    return obj.mtime_ns > stat.st_mtime_ns or (
        obj.mtime_ns == stat.st_mtime_ns and obj.size != stat.st_size
    )


def _pull_all(store: ObjectStore, root: Path, objects: list[ObjectInfo]) -> None:
    def pull(obj: ObjectInfo) -> None:
        local = root / obj.key
        if store.get_file(obj.key, local) and obj.mtime_ns:
            # The store's time, so that the next hydrate pulls it only when the store changes.
            os.utime(local, ns=(obj.mtime_ns, obj.mtime_ns))

    _each(pull, objects)


def _each(work: Callable[[Any], object], items: list[Any]) -> None:
    """``work`` on every item: small files, several at once (each is a few requests)."""
    if len(items) <= 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(min(THREADS, len(items))) as pool:
        list(pool.map(work, items))


def restore_warehouse(settings: Settings) -> bool:
    """Take the store's ``warehouse.duckdb`` when this directory has none or an older one."""
    store = _store(settings)
    if store is None:
        return False
    published = _parse(store.get_bytes(WAREHOUSE_DOC))
    if published is None:
        return False
    have = _read_json(_state_path(settings, WAREHOUSE_DOC)) or {}
    if settings.load_path.exists() and have.get("generation") == published.get("generation"):
        return False
    from hoop_sessions.warehouse.snapshot import wal_path

    started = time.monotonic()
    # A log of this directory's older copy would be replayed onto the restored file.
    wal_path(settings.load_path).unlink(missing_ok=True)
    if not store.get_file(WAREHOUSE_KEY, settings.load_path):
        raise StoreError(
            f"{store.url}/{WAREHOUSE_DOC} names generation {published.get('generation')} but "
            f"{WAREHOUSE_KEY} is missing; remove {WAREHOUSE_DOC} to have the warehouse rebuilt from "
            "the lake"
        )
    _write_json(_state_path(settings, WAREHOUSE_DOC), published)
    log.info(
        "warehouse restored from %s/%s (generation %s, %.1f MiB) in %.1f s",
        store.url,
        WAREHOUSE_KEY,
        published.get("generation"),
        settings.load_path.stat().st_size / 2**20,
        time.monotonic() - started,
    )
    return True


def rebuild_warehouse(settings: Settings) -> list[date]:
    """A warehouse made from the store's lake, when the store has lake commits but no warehouse
    (it was removed, or never published): every committed day is pulled and loaded."""
    days = committed_days(settings)
    if not days:
        return []
    from hoop_sessions.sync.day import load_into_warehouse

    started = time.monotonic()
    log.warning(
        "%s has no warehouse.duckdb: rebuilding it from the lake's %d day(s)",
        settings.data_location,
        len(days),
    )
    pull_days(settings, days, lake=True)
    for day in days:  # not record_day: hydrate pulled the tamper manifests with the ledger
        load_into_warehouse(settings, day)
    log.info(
        "warehouse rebuilt from %d day(s) of the lake in %.1f s",
        len(days),
        time.monotonic() - started,
    )
    return days


def committed_days(settings: Settings, kind: str = "lake") -> list[date]:
    """The days the store has a ``kind`` (lake, raw) commit for, oldest first."""
    store = _store(settings)
    if store is None:
        return []
    days = []
    for key in store.list(f"{kind}/_commits"):
        name = key.rsplit("/", 1)[-1].removesuffix(".json").removeprefix("start_day=")
        try:
            days.append(date.fromisoformat(name))
        except ValueError:
            continue
    return sorted(days)


def pull_days(settings: Settings, days: Iterable[date], *, lake: bool = False) -> None:
    """The raw file (and with ``lake``, the lake files) of each day, as the store's commits name them.

    A file this directory already has in the committed version is not downloaded again.
    """
    store = _store(settings)
    if store is None:
        return
    from hoop_sessions import paths as lake_files
    from hoop_sessions.extract.raw import raw_path

    jobs: list[tuple[str, Path]] = []
    states: dict[date, dict[str, Any]] = {}
    for day in days:
        have = _read_json(_day_state(settings, day)) or {"files": {}}
        wanted: dict[str, tuple[dict[str, Any], Path]] = {}
        raw_commit = _parse(store.get_bytes(commit_key(day, "raw")))
        if raw_commit is not None:
            wanted["raw"] = (raw_commit["raw"], raw_path(settings.raw_dir, day))
        lake_commit = _parse(store.get_bytes(commit_key(day))) if lake else None
        if lake_commit is not None:
            for table, entry in lake_commit["tables"].items():
                wanted[f"lake/{table}"] = (
                    entry,
                    lake_files.table_path(settings.lake_dir, table, day),
                )
        for name, (entry, local) in wanted.items():
            if have["files"].get(name) != entry["sha256"] or not local.exists():
                jobs.append((entry["key"], local))
            have["files"][name] = entry["sha256"]
        if lake_commit is not None:
            # The lake's own manifest, as the build writes it, so that the day reads as complete.
            digests = {t: e["sha256"] for t, e in lake_commit["tables"].items()}
            have["lake_manifest"] = {"start_day": day.isoformat(), "files": digests}
        if wanted:
            states[day] = have
    _each(lambda job: store.get_file(*job), jobs)
    for day, have in states.items():
        manifest = have.pop("lake_manifest", None)
        if manifest is not None:
            _write_json(lake_files.manifest_path(settings.lake_dir, day), manifest)
        _write_json(_day_state(settings, day), have)
    if jobs:
        log.info("%s: %d file(s) of %d day(s) pulled", store.url, len(jobs), len(states))


def _day_state(settings: Settings, day: date) -> Path:
    return _state_path(settings, f"days/start_day={day.isoformat()}.json")


# --- a day read, a day built --------------------------------------------------------------------


def publish_day(settings: Settings, day: date) -> None:
    """Raw file, lake files and tamper-evidence manifests of a day just built and loaded."""
    publish_files(settings, day)
    push_day_records(settings, day)


def publish_files(settings: Settings, day: date) -> None:
    """Raw file and lake files of a day just built (its manifests follow its load)."""
    if settings.store is None:
        return
    publish_raw(settings, day)
    publish_lake(settings, day)


def publish_raw(settings: Settings, day: date) -> None:
    """The day's raw file as a content-addressed object, then its commit."""
    from hoop_sessions.extract.raw import raw_path
    from hoop_sessions.paths import file_sha256

    local = raw_path(settings.raw_dir, day)
    digest = file_sha256(local)
    key = f"raw/start_day={day.isoformat()}/sessions-{digest[:16]}.ndjson.gz"
    _publish(settings, day, "raw", {"raw": (local, key, digest)})


def publish_lake(settings: Settings, day: date) -> None:
    """The day's lake files as content-addressed objects, then the commit that names them."""
    from hoop_sessions import paths as lake_files

    # The tables are those the build wrote and named in the day's lake manifest.
    digests = orjson.loads(lake_files.manifest_path(settings.lake_dir, day).read_bytes())["files"]
    stamp = f"start_day={day.isoformat()}"
    files = {
        table: (
            lake_files.table_path(settings.lake_dir, table, day),
            f"lake/{table}/{stamp}/part-{digest[:16]}.parquet",
            digest,
        )
        for table, digest in sorted(digests.items())
    }
    _publish(settings, day, "lake", files)


def _publish(
    settings: Settings, day: date, kind: str, files: dict[str, tuple[Path, str, str]]
) -> None:
    store = _store(settings)
    if store is None:
        return
    started = time.monotonic()
    present: dict[str, ObjectInfo] = {}
    for prefix in {key.rsplit("/", 1)[0] for _, key, _ in files.values()}:
        present.update(store.list(prefix))
    uploads = [
        (local, key)
        for local, key, _ in files.values()
        if key not in present or present[key].size != local.stat().st_size
    ]
    for local, key in uploads:
        # One at a time, on this thread: threads of their own each kept an allocator arena of
        # the S3 client's buffers, tens of MiB over a run; a day's files are few.
        store.put_file(local, key)
    entries = {
        name: {"key": key, "sha256": digest, "size": local.stat().st_size}
        for name, (local, key, digest) in files.items()
    }
    commit: dict[str, Any] = {
        "start_day": day.isoformat(),
        "committed_at": datetime.now(UTC).isoformat(),
    }
    if kind == "raw":
        commit["raw"] = entries["raw"]
    else:
        commit["tables"] = entries
    store.put_bytes(commit_key(day, kind), _json(commit))
    # Committed: the objects of the day's earlier versions, and any a killed run left, go.
    stale = sorted(set(present) - {key for _, key, _ in files.values()})
    store.delete(stale)
    _release_buffers()
    state = _read_json(_day_state(settings, day)) or {"files": {}}
    for name, entry in entries.items():
        state["files"]["raw" if kind == "raw" else f"lake/{name}"] = entry["sha256"]
    _write_json(_day_state(settings, day), state)
    log.info(
        "%s: %s %s published (%d of %d object(s) uploaded, %d replaced) in %.1f s",
        store.url,
        day,
        kind,
        len(uploads),
        len(files),
        len(stale),
        time.monotonic() - started,
    )


def _release_buffers() -> None:
    """Give the transfer buffers back: glibc would keep them for the rest of the run, in the
    process that also reads hoop."""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def push_day_records(settings: Settings, day: date) -> None:
    """The day's tamper-evidence manifest, the later ones its re-linking rewrote, and the history."""
    store = _store(settings)
    if store is None:
        return
    from hoop_sessions.warehouse.manifest import manifest_days, manifest_dir, manifest_file

    paths = [
        manifest_file(settings.data_dir, d) for d in manifest_days(settings.data_dir) if d >= day
    ]
    history = manifest_dir(settings.data_dir) / "history.jsonl"
    if history.exists():
        paths.append(history)
    _push(settings, store, paths)


def push_ledger(settings: Settings, days: Iterable[date]) -> None:
    """The ledger files of ``days`` and the recorded first day."""
    store = _store(settings)
    if store is None:
        return
    from hoop_sessions.sync.ledger import Ledger

    ledger = Ledger(settings.data_dir)
    paths = [ledger.path(day) for day in days] + [ledger.root / "first_day.json"]
    _push(settings, store, [p for p in paths if p.exists()])


def _push(settings: Settings, store: ObjectStore, paths: list[Path]) -> None:
    def push(path: Path) -> None:
        store.put_file(path, path.relative_to(settings.data_dir).as_posix())

    _each(push, paths)


# --- a run's end ---------------------------------------------------------------------------------


def publish_warehouse(settings: Settings, days: Iterable[date] = ()) -> None:
    """The published warehouse to the store, then the ledger of the run's ``days``.

    Refuses to overwrite a warehouse another writer published after this directory restored its
    own: that one holds days this one lacks. The days of this run stay published in the lake and
    unloaded in the store's ledger, so the next run loads them into the newer warehouse.
    """
    store = _store(settings)
    if store is None:
        return
    source = settings.warehouse_path  # the snapshot just published: checkpointed and whole
    if not source.exists():
        push_ledger(settings, days)
        return
    started = time.monotonic()
    published = _parse(store.get_bytes(WAREHOUSE_DOC)) or {}
    have = _read_json(_state_path(settings, WAREHOUSE_DOC)) or {}
    if published.get("generation") not in (None, have.get("generation")):
        raise StoreError(
            f"{store.url}/{WAREHOUSE_KEY} was published by another writer (generation "
            f"{published.get('generation')}, this run started from {have.get('generation')}): not "
            "overwritten. Run one writer at a time per store (the Dagster pool hoop_warehouse); the "
            "next run loads this run's days into the newer warehouse"
        )
    size = source.stat().st_size
    store.put_file(source, WAREHOUSE_KEY)
    _release_buffers()
    doc = {
        "generation": int(published.get("generation") or 0) + 1,
        "published_at": datetime.now(UTC).isoformat(),
        "bytes": size,
    }
    store.put_bytes(WAREHOUSE_DOC, _json(doc))
    _write_json(_state_path(settings, WAREHOUSE_DOC), doc)
    push_ledger(settings, days)
    log.info(
        "warehouse published to %s/%s (generation %d, %.1f MiB) in %.1f s",
        store.url,
        WAREHOUSE_KEY,
        doc["generation"],
        size / 2**20,
        time.monotonic() - started,
    )
