"""Raw day file into the day's lake tables (flatten every body, account for every listed session)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
from collections.abc import Callable
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from hoop_sessions.build import lake, schema
from hoop_sessions.build.flatten import DayBuilder
from hoop_sessions.build.result import BuildResult, warning_line
from hoop_sessions.errors import RawDataError
from hoop_sessions.extract.finality import final_from
from hoop_sessions.extract.principal import describe_principal, principal_sees_all
from hoop_sessions.extract.raw import RawDay
from hoop_sessions.extract.values import (
    PAYLOAD_LIMIT,
    RecordRejected,
    Reject,
    parse_time,
    truncate_payload,
)

log = logging.getLogger(__name__)


def build_tables(
    raw_dir: Path, day: date, *, events_sink: Callable[[pa.RecordBatch], None] | None = None
) -> tuple[dict[str, pa.Table], BuildResult]:
    """Flatten a day's raw file into Arrow tables of the contract, with its ledger rows.

    With ``events_sink`` the day's events go to it batch by batch as they are built and are
    not among the tables returned.
    """
    raw = RawDay(raw_dir, day)
    header = raw.header
    principal = header.get("principal") or {}
    builder = DayBuilder(
        day,
        principal_id=principal.get("id"),
        principal_sees_all=principal_sees_all(principal),
        events_sink=events_sink,
    )
    order: list[str] = list(header.get("order") or [])
    synced_at = _time(header["finished_at"], "finished_at")
    rejected: set[str] = set()
    for reject in header.get("rejects") or []:
        builder.add_reject(_reject_from_json(day, reject))
        if reject.get("session_id"):
            rejected.add(reject["session_id"])
    count = 0
    finals: dict[str, str | None] = {}
    for body in raw.bodies():
        if count >= len(order):
            raise RawDataError(
                f"raw file of {day} holds more bodies than its record names: sync it again"
            )
        sid = order[count]
        count += 1
        try:
            record = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            builder.add_reject(
                Reject(
                    day, sid, "flatten", f"invalid JSON: {exc}", truncate_payload(body), synced_at
                )
            )
            rejected.add(sid)
            continue
        # A body can be 150 MB and its parsed record as much again: keep only a short excerpt for
        # a reject, and let go of the body before flattening and of the record right after.
        head = body[: PAYLOAD_LIMIT * 2]  # all that truncate_payload reads of a body
        del body
        try:
            if (
                isinstance(record, dict)
                and isinstance(record.get("id"), str)
                and record["id"].lower() != sid
            ):
                raise RecordRejected(
                    f"asked for session {sid}, the gateway answered with {record['id']!r}", sid
                )
            builder.add_session(record, synced_at=synced_at)
            since = final_from(record)
            finals[sid] = since.isoformat() if since is not None else None
        except RecordRejected as exc:
            builder.add_reject(
                Reject(day, sid, "flatten", exc.reason, truncate_payload(head), synced_at)
            )
            rejected.add(sid)
        del record
    if count != len(order):
        raise RawDataError(
            f"raw file of {day} holds {count} bodies, its record names {len(order)}: sync it again"
        )
    loaded = builder.session_ids
    principal_text = describe_principal(principal)
    listed_total = 0
    for window in header.get("windows") or []:
        ids = window.get("session_ids") or []
        listed_total += len(ids)
        builder.add_window(
            {
                "window_start": _time(window["window_start"], "window_start"),
                "window_end": _time(window["window_end"], "window_end"),
                "sessions_listed": len(ids),
                "sessions_loaded": sum(1 for s in ids if s in loaded),
                "sessions_rejected": sum(1 for s in ids if s in rejected and s not in loaded),
                "pages": window.get("pages"),
                "requests": window.get("requests"),
                "retries": window.get("retries"),
                "started_at": _time(window["started_at"], "started_at"),
                "finished_at": _time(window["finished_at"], "finished_at"),
                "api_url": header.get("api_url"),
                "principal": principal_text,
            }
        )
    tables = builder.tables()
    sessions = tables["sessions"]
    result = BuildResult(
        day=day,
        sessions_listed=listed_total,
        sessions_loaded=len(loaded),
        sessions_rejected=len(rejected - loaded),
        rows={
            t.name: tables[t.name].num_rows if t.name in tables else builder.events.rows
            for t in schema.DAY_TABLES
        },
        unknown_fields=dict(builder.unknown_fields),
        stream_status=_value_counts(sessions.column("stream_status").to_pylist()),
        session_status=_value_counts(sessions.column("status").to_pylist()),
        final_from=finals,
        warnings=dict(sorted(builder.warning_counts.items())),
    )
    if builder.unknown_fields:
        log.warning(
            "%s: fields unknown to this version, kept in the raw file: %s",
            day,
            dict(builder.unknown_fields),
        )
    if builder.warning_counts:
        log.warning(
            "%s: %d record warning(s) (sessions loaded; see record_warnings): %s",
            day,
            sum(builder.warning_counts.values()),
            warning_line(result.warnings),
        )
    return tables, result


def build_day(raw_dir: Path, lake_dir: Path, day: date) -> BuildResult:
    """Build the day's lake files. Events are written to Parquet as they are built, a batch of
    a few MiB at a time, so the memory a day needs follows its largest session, not its size."""
    with lake.DayWriter(lake_dir, day) as out:
        tables, result = build_tables(
            raw_dir, day, events_sink=partial(out.write_batch, schema.SESSION_EVENTS.name)
        )
        for name, table in tables.items():
            out.write_table(name, table)
        del tables
        out.commit()
    release_memory()
    return result


def release_memory() -> None:
    """Hand memory freed by a day's build back to the operating system.

    Arrow's allocator and glibc's both keep freed memory for reuse. After a day holding a
    100 MiB stream that is several hundred MiB that the load (DuckDB, in the same process) would
    otherwise stack its own memory on top of. Both calls are cheap next to a day's build.
    """
    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        # Not glibc (e.g. musl): there is nothing to trim.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _time(value: str, what: str) -> datetime:
    return parse_time(value.replace("+00:00", "Z"), what)


def _value_counts(values: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return counts


def _reject_from_json(day: date, doc: dict[str, Any]) -> Reject:
    seen = doc.get("seen_at")
    return Reject(
        start_day=day,
        session_id=doc.get("session_id"),
        stage=str(doc.get("stage") or "unknown"),
        reason=str(doc.get("reason") or ""),
        payload=doc.get("payload"),
        seen_at=_time(str(seen), "seen_at"),
    )
