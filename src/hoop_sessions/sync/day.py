"""The CPU half of a day: its raw file into lake files, then into the warehouse.

What the build worker (``sync.worker``) runs in its child process, and what a Dagster step or
``rebuild_day`` runs in its own. Building imports Arrow, so ``hoop_sessions.build`` is imported
inside ``build_and_record``: the process that reads hoop imports this module without loading it.
"""

from __future__ import annotations

from datetime import date

from hoop_sessions.build.result import BuildResult
from hoop_sessions.config import Settings
from hoop_sessions.extract.raw import header_stamp, read_header
from hoop_sessions.sync.ledger import Ledger, record_built, record_loaded
from hoop_sessions.warehouse import load as warehouse
from hoop_sessions.warehouse import manifest, snapshot


def build_and_load(
    settings: Settings, day: date, changed: bool = True
) -> tuple[BuildResult | None, dict[str, int]]:
    """The CPU half of a day: raw file into lake files and manifest, then into the warehouse.

    What the build worker runs. It never touches the object store: the run publishes the day
    (``mirror.publish_day``) once this returns, from the process that holds the store's client
    already, so that the worker's memory is the same with a store as without.
    """
    if not changed:
        return None, {}
    built = build_and_record(settings, day)
    return built, load_and_record(settings, day)


def build_and_record(settings: Settings, day: date) -> BuildResult:
    """Raw file into lake files (the day's manifest is recorded by its load, ``load_and_record``); the
    caller publishes them to an object store (``mirror.publish_files``)."""
    # Imported here: building (Arrow, Parquet) runs in the worker process; the process that
    # reads hoop never needs it when a worker builds.
    from hoop_sessions.build.day import build_day

    built = build_day(settings.raw_dir, settings.lake_dir, day)
    record_built(Ledger(settings.data_dir), day, built.final_from)
    return built


def load_and_record(settings: Settings, day: date) -> dict[str, int]:
    """Lake files of a day into the writer's copy of the warehouse, waiting for another writer.

    The day's tamper-evidence manifest is recorded here, by the one writer at a time, so that the
    chain stays whole when different workers build different days at once. Nothing here touches
    an object store: the caller publishes (``mirror.publish_day``, ``mirror.push_day_records``).
    """
    manifest.record_day(settings.data_dir, day)
    return load_into_warehouse(settings, day)


def load_into_warehouse(settings: Settings, day: date) -> dict[str, int]:
    """The day's lake files into the writer's copy, and the ledger told which read they hold."""
    header = read_header(settings.raw_dir, day)
    counts = warehouse.load_day(lambda: snapshot.connect_writer(settings), settings.lake_dir, day)
    # The lake files were built from the raw file there now (a reader of hoop replaces it only
    # under the one-writer lock, never while a day is loaded).
    record_loaded(Ledger(settings.data_dir), day, header_stamp(header) if header else None)
    return counts
