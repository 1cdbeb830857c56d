"""Raw hoop session records into rows of the contract tables. Pure: no I/O, no clock.

``DayBuilder`` collects the rows of one UTC day column by column and hands out Arrow tables typed
by ``schema``. A record that cannot be flattened raises ``RecordRejected`` before anything of it is
appended, so a day never holds half a session.
"""

from __future__ import annotations

import math
import operator
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import orjson
import pyarrow as pa

from hoop_sessions.build import schema
from hoop_sessions.extract.events import (
    KNOWN_EVENT_TYPES,
    STREAM_UNREADABLE,
    StreamError,
    decode_stream,
)
from hoop_sessions.extract.finality import is_final
from hoop_sessions.extract.values import (
    OUTPUT_MARKER,
    UUID_RE,
    RecordRejected,
    Reject,
    parse_time,
    to_micros,
    truncate_payload,
)


class _Columns:
    """Rows of one table as tuples in schema order, turned into Arrow columns once, at the end.

    A row is read with one ``itemgetter`` call (C speed) rather than a Python loop over its
    columns; a row missing a column (none of ours does) falls back to ``dict.get``.
    """

    def __init__(self, table: schema.Table) -> None:
        self.table = table
        self.names = tuple(table.columns)
        self._values = operator.itemgetter(*self.names)
        self.rows: list[tuple[Any, ...]] = []

    def append(self, row: dict[str, Any]) -> None:
        try:
            values = self._values(row)
        except KeyError:
            values = tuple(row.get(name) for name in self.names)
        self.rows.append(values)

    def to_arrow(self) -> pa.Table:
        columns: list[Any] = (
            list(zip(*self.rows, strict=True)) if self.rows else [()] * len(self.names)
        )
        arrays = [
            pa.array(values, type=f.type)
            for values, f in zip(columns, self.table.schema, strict=True)
        ]
        return pa.Table.from_arrays(arrays, schema=self.table.schema)


class _Events:
    """The event rows of a day, turned into Arrow record batches every few MiB of payload.

    Payloads can be large (a session may record 100+ MiB, a day ten such sessions), so they do
    not wait in Python lists: once the pending payloads pass ``FLUSH_BYTES`` they are copied into
    a record batch and the Python objects are let go, also in the middle of one session's events.
    A batch goes to ``sink`` (the day's Parquet writer) as soon as it is made, so a day holds at
    most one batch of events whatever its size; without a sink the batches are kept for
    ``to_arrow``. ``payload_text`` is made by Arrow from the binary column: a batch that is valid
    UTF-8 (the usual case) is cast without a copy; one that is not is decoded per payload with
    replacement characters, as Python does.
    """

    FLUSH_BYTES = 8 << 20

    def __init__(
        self, table: schema.Table, day: date, sink: Callable[[pa.RecordBatch], None] | None = None
    ) -> None:
        self.schema = table.schema
        self.day = day
        self.batches: list[pa.RecordBatch] = []
        self.rows = 0
        self._sink = sink if sink is not None else self.batches.append
        self._reset()

    def _reset(self) -> None:
        self.session_id: list[str] = []
        self.seq: list[int] = []
        self.elapsed: list[float] = []
        self.event_time: list[int] = []
        self.event_type: list[str] = []
        self.payload: list[bytes | None] = []
        self.sizes: list[int] = []
        self.digests: list[str | None] = []
        self.pending_bytes = 0

    def add(
        self,
        sid: str,
        start_us: int,
        elapsed: list[float],
        types: list[str],
        payloads: list[bytes | None],
        withheld: dict[int, tuple[str | None, int]],
    ) -> None:
        """Append a session's events. ``payloads`` is consumed: each entry is set to None once
        it is copied into a batch, so that a 100 MiB stream is not held twice."""
        n = len(payloads)
        size = sum(len(p) for p in payloads if p is not None)
        if self.pending_bytes + size < self.FLUSH_BYTES:  # the usual case: a small session
            self.pending_bytes += size
            self._extend(sid, start_us, elapsed, types, payloads, withheld, 0, n)
            return
        start = 0
        for end in range(n):
            payload = payloads[end]
            if payload is not None:
                self.pending_bytes += len(payload)
            if self.pending_bytes >= self.FLUSH_BYTES:
                self._extend(sid, start_us, elapsed, types, payloads, withheld, start, end + 1)
                self.flush()
                start = end + 1
        if start < n:
            self._extend(sid, start_us, elapsed, types, payloads, withheld, start, n)

    def _extend(
        self,
        sid: str,
        start_us: int,
        elapsed: list[float],
        types: list[str],
        payloads: list[bytes | None],
        withheld: dict[int, tuple[str | None, int]],
        start: int,
        end: int,
    ) -> None:
        """Events ``start:end`` of a session into the pending lists, taken out of ``payloads``."""
        part = payloads[start:end]
        payloads[start:end] = [None] * (end - start)
        n = end - start
        if withheld:
            self.sizes.extend(
                withheld[i][1] if i in withheld else len(p or b"")
                for i, p in enumerate(part, start)
            )
            self.digests.extend(
                withheld[i][0] if i in withheld else None for i in range(start, end)
            )
        else:
            self.sizes.extend(map(len, part))  # type: ignore[arg-type]
            self.digests.extend([None] * n)
        self.session_id.extend([sid] * n)
        self.seq.extend(range(start, end))
        times = elapsed[start:end]
        self.elapsed.extend(times)
        self.event_time.extend([start_us + round(e * 1_000_000) for e in times])
        self.event_type.extend(types[start:end])
        self.payload.extend(part)

    def flush(self) -> None:
        if not self.payload:
            return
        n = len(self.payload)
        payload = pa.array(self.payload, type=pa.binary())
        arrays = [
            pa.array(self.session_id, type=pa.string()),
            pa.array(self.seq, type=pa.int64()),
            pa.array([self.day] * n, type=pa.date32()),
            pa.array(self.elapsed, type=pa.float64()),
            pa.array(self.event_time, type=schema.UTC_TS),
            pa.array(self.event_type, type=pa.string()),
            payload,
            _utf8_text(payload, self.payload),
            pa.array(self.sizes, type=pa.int64()),
            pa.array(self.digests, type=pa.string()),
        ]
        self._reset()
        self.rows += n
        self._sink(pa.RecordBatch.from_arrays(arrays, schema=self.schema))

    def to_arrow(self) -> pa.Table:
        """Every event of the day (only without a sink: with one, the batches went to it)."""
        self.flush()
        if not self.batches:
            return self.schema.empty_table()
        return pa.Table.from_batches(self.batches, schema=self.schema)


def _utf8_text(payload: pa.Array, payloads: list[bytes | None]) -> pa.Array:
    """The payloads as text: Arrow validates UTF-8 as strictly as Python; on a valid batch the
    cast reuses the binary column's buffers, so text costs neither a copy nor Python strings."""
    try:
        return payload.cast(pa.string())
    except pa.ArrowInvalid:
        # ASCII bytes are their own UTF-8: handed to Arrow as they are, no str is made.
        return pa.array(
            [p if p is None or p.isascii() else p.decode("utf-8", "replace") for p in payloads],
            type=pa.string(),
        )


class DayBuilder:
    """Rows of one UTC day, for every day table."""

    def __init__(
        self,
        day: date,
        *,
        principal_id: str | None = None,
        principal_sees_all: bool = True,
        events_sink: Callable[[pa.RecordBatch], None] | None = None,
    ):
        """``events_sink`` takes the day's events batch by batch as they are made (the lake
        writer); without it ``tables()`` returns them with the other tables."""
        self.day = day
        self.principal_id = principal_id
        self.principal_sees_all = principal_sees_all
        self.cols = {
            t.name: _Columns(t) for t in schema.DAY_TABLES if t is not schema.SESSION_EVENTS
        }
        self.events = _Events(schema.SESSION_EVENTS, day, events_sink)
        self._streamed = events_sink is not None
        self.session_ids: set[str] = set()
        self.unknown_fields: Counter[str] = Counter()
        # "kind field" (and "=value" for an unknown value) -> how many sessions had it
        self.warning_counts: Counter[str] = Counter()

    # -- sessions ---------------------------------------------------------------------------

    def add_session(self, record: Any, *, synced_at: datetime) -> None:
        """Flatten one GET /api/sessions/{id} record. Raises RecordRejected, appending nothing."""
        rows = flatten_session(
            record,
            day=self.day,
            synced_at=synced_at,
            stream_visible=self._stream_visible(record),
        )
        if rows.session["session_id"] in self.session_ids:
            raise RecordRejected("duplicate session id in the same day", rows.session["session_id"])
        self.session_ids.add(rows.session["session_id"])
        self.cols["sessions"].append(rows.session)
        if rows.review is not None:
            self.cols["reviews"].append(rows.review)
        for group in rows.review_groups:
            self.cols["review_groups"].append(group)
        for key, value in rows.tags:
            self.cols["connection_tags"].append(
                {
                    "session_id": rows.session["session_id"],
                    "start_day": self.day,
                    "tag_key": key,
                    "tag_value": value,
                }
            )
        self._append_events(rows)
        self.unknown_fields.update(rows.unknown_fields)
        self._add_warnings(rows.session["session_id"], rows.warnings, synced_at)
        if rows.stream_message is not None:
            self.add_reject(
                Reject(
                    self.day,
                    rows.session["session_id"],
                    "stream",
                    "the gateway could not encode the event stream; session loaded with "
                    "stream_status=unreadable",
                    rows.stream_message,
                    synced_at,
                )
            )

    def _add_warnings(self, sid: str, warnings: list[RecordWarning], seen_at: datetime) -> None:
        for w in warnings:
            self.cols["record_warnings"].append(
                {
                    "start_day": self.day,
                    "session_id": sid,
                    "field": w.field,
                    "value": w.value,
                    "kind": w.kind,
                    "detail": w.detail,
                    "seen_at": seen_at,
                }
            )
            key = f"{w.kind} {w.field}" + (f"={w.value}" if w.kind == UNKNOWN_VALUE else "")
            self.warning_counts[key] += 1

    def _stream_visible(self, record: Any) -> bool:
        if self.principal_sees_all or not isinstance(record, dict):
            return True
        return record.get("user_id") == self.principal_id

    def _append_events(self, rows: FlatSession) -> None:
        self.events.add(
            rows.session["session_id"],
            rows.start_us,
            rows.elapsed,
            rows.types,
            rows.payloads,
            rows.withheld,
        )

    # -- ledger -----------------------------------------------------------------------------

    def add_reject(self, reject: Reject) -> None:
        self.cols["rejects"].append(
            {
                "start_day": reject.start_day,
                "session_id": reject.session_id,
                "stage": reject.stage,
                "reason": reject.reason,
                "payload": reject.payload,
                "seen_at": reject.seen_at,
            }
        )

    def add_window(self, row: dict[str, Any]) -> None:
        self.cols["sync_windows"].append({"start_day": self.day, **row})

    def tables(self) -> dict[str, pa.Table]:
        """Every day table, in the order of the contract (load order). With an events sink the
        last events are flushed to it and ``session_events`` is left out (the sink has them)."""
        tables = {name: cols.to_arrow() for name, cols in self.cols.items()}
        if self._streamed:
            self.events.flush()
        else:
            tables[schema.SESSION_EVENTS.name] = self.events.to_arrow()
        return {t.name: tables[t.name] for t in schema.DAY_TABLES if t.name in tables}


MALFORMED = "malformed"
UNKNOWN_VALUE = "unknown_value"
WARNING_VALUE_LIMIT = 1000

# hoop: gateway/models/reviews.go (ReviewStatusType); review groups carry the same type.
REVIEW_STATUSES = frozenset(
    {"PENDING", "APPROVED", "REJECTED", "REVOKED", "PROCESSING", "EXECUTED", "UNKNOWN"}
)
# The documented values of each enumeration of a record, by the field that holds it: the one place
# they are defined. Any other value is stored as it came and written to record_warnings as
# unknown_value (gateways newer than 1.148 add values: review status EXPIRED, identity sidecar).
KNOWN_VALUES: dict[str, frozenset[str]] = {
    "status": frozenset({"open", "ready", "done"}),  # hoop: gateway/api/openapi/types.go
    "verb": frozenset({"connect", "exec"}),  # hoop: gateway/api/openapi/types.go
    "identity_type": frozenset({"user", "machine"}),  # hoop: gateway/api/openapi/types.go
    # Sent by gateways after 1.148 only (the key is absent before): the values documented with it.
    "recording_format": frozenset({"pty", "exec", "rdp", "raw"}),
    "review.type": frozenset({"onetime", "jit"}),  # hoop: gateway/api/openapi/types.go
    "review.status": REVIEW_STATUSES,
    "review.review_groups_data.status": REVIEW_STATUSES,
    "event_stream.type": KNOWN_EVENT_TYPES,
}


@dataclass(frozen=True)
class RecordWarning:
    """A sub-field nulled because it was malformed, or a value outside its known set."""

    field: str
    value: str | None  # JSON text of what hoop sent, cut to WARNING_VALUE_LIMIT characters
    kind: str  # MALFORMED or UNKNOWN_VALUE
    detail: str


class _Notes:
    """The warnings of one record, collected while it is flattened."""

    def __init__(self) -> None:
        self.warnings: list[RecordWarning] = []

    def malformed(self, field: str, value: Any, detail: str) -> None:
        self.warnings.append(RecordWarning(field, _value_text(value), MALFORMED, detail))

    def known(self, field: str, value: str | None, detail: str = "") -> None:
        if value is not None and value not in KNOWN_VALUES[field]:
            self.warnings.append(
                RecordWarning(
                    field,
                    _value_text(value),
                    UNKNOWN_VALUE,
                    detail or "not a value this version knows; stored as it came",
                )
            )


def _value_text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= WARNING_VALUE_LIMIT else text[:WARNING_VALUE_LIMIT] + "..."


@dataclass
class FlatSession:
    session: dict[str, Any]
    review: dict[str, Any] | None
    review_groups: list[dict[str, Any]]
    tags: list[tuple[str, str | None]]
    start_us: int
    elapsed: list[float]
    types: list[str]
    payloads: list[bytes | None]
    withheld: dict[
        int, tuple[str | None, int]
    ]  # seq -> (SHA-256 or None, length) of payloads not kept
    stream_message: str | None
    unknown_fields: list[str]
    warnings: list[RecordWarning]


KNOWN_FIELDS = frozenset(
    {
        "id",
        "org_id",
        "start_date",
        "end_date",
        "status",
        "verb",
        "type",
        "connection_subtype",
        "connection",
        "role_name",
        "resource_name",
        "connection_tags",
        "user",
        "user_id",
        "user_name",
        "identity_type",
        "machine_identity_id",
        "exit_code",
        "event_size",
        "script_size",
        "script",
        "labels",
        "metadata",
        "integrations_metadata",
        "metrics",
        "ai_analysis",
        "guardrails_info",
        "session_batch_id",
        "correlation_id",
        "review",
        "event_stream",
        "recording_format",
        OUTPUT_MARKER,
    }
)


def flatten_session(
    record: Any, *, day: date, synced_at: datetime, stream_visible: bool = True
) -> FlatSession:
    """One session record into rows. Raises RecordRejected with a reason a person understands.

    Only what makes the session unreadable rejects it: no id, no start_date on ``day``, an event
    stream that cannot be decoded. A malformed sub-field is stored as null and noted in
    ``warnings``; a value outside its known set is stored as it came and noted too.
    """
    if not isinstance(record, dict):
        raise RecordRejected(f"record is a JSON {type(record).__name__}, expected an object")
    sid = record.get("id")
    if not isinstance(sid, str) or not UUID_RE.match(sid):
        raise RecordRejected(f"missing or malformed session id: {truncate_payload(sid)[:80]}")
    sid = sid.lower()
    notes = _Notes()
    try:
        start = parse_time(record.get("start_date"), "start_date")
        if start.date() != day:
            raise RecordRejected(f"start_date {record.get('start_date')} is not on day {day}")
        end = _opt_time(notes, record, "end_date")
        try:
            stream = decode_stream(
                record.get("event_stream"), present="event_stream" in record, visible=stream_visible
            )
        except StreamError as exc:
            raise RecordRejected(f"event stream: {exc}") from None
        payloads: list[bytes | None] = list(stream.payloads)
        withheld = _withheld_output(record.get(OUTPUT_MARKER), stream.types)
        for seq in withheld:
            payloads[seq] = None
    except RecordRejected as exc:
        exc.session_id = sid
        raise
    _note_event_types(notes, stream.types)
    review = record.get("review")
    if review is not None and not isinstance(review, dict):
        notes.malformed(
            "review",
            review,
            f"review is a {type(review).__name__}, expected an object "
            "or null; no review row loaded",
        )
        review = None
    metrics = _opt_map(notes, record, "metrics")
    masking = metrics.get("data_masking") if metrics is not None else None
    if masking is not None and not isinstance(masking, dict):
        notes.malformed("metrics.data_masking", masking, "expected an object")
        masking = None
    integrations = _opt_map(notes, record, "integrations_metadata")
    script = record.get("script")
    if script is not None and not isinstance(script, dict):
        notes.malformed(
            "script", script, f"script is a {type(script).__name__}, expected an object"
        )
        script = None
    status = _opt_str(notes, record, "status")
    notes.known("status", status)
    verb = _opt_str(notes, record, "verb")
    notes.known("verb", verb)
    identity_type = _opt_str(notes, record, "identity_type")
    notes.known("identity_type", identity_type)
    recording_format = _opt_str(notes, record, "recording_format")
    notes.known("recording_format", recording_format)
    session = {
        "session_id": sid,
        "org_id": _opt_str(notes, record, "org_id"),
        "start_date": start,
        "end_date": end,
        "start_day": day,
        "duration_seconds": (end - start).total_seconds() if end is not None else None,
        "status": status,
        "verb": verb,
        "type": _opt_str(notes, record, "type"),
        "connection_subtype": _opt_str(notes, record, "connection_subtype"),
        "recording_format": recording_format,
        "connection": _opt_str(notes, record, "connection"),
        "role_name": _opt_str(notes, record, "role_name"),
        "resource_name": _opt_str(notes, record, "resource_name"),
        "user_email": _opt_str(notes, record, "user"),
        "user_id": _opt_str(notes, record, "user_id"),
        "user_name": _opt_str(notes, record, "user_name"),
        "identity_type": identity_type,
        "machine_identity_id": _opt_str(notes, record, "machine_identity_id"),
        "exit_code": _opt_int(notes, record, "exit_code"),
        "event_size": _opt_int(notes, record, "event_size"),
        "script_size": _opt_int(notes, record, "script_size"),
        "script": _opt_str(notes, script, "data", "script.data"),
        "session_batch_id": _opt_str(notes, record, "session_batch_id"),
        "correlation_id": _opt_str(notes, record, "correlation_id"),
        "jira_issue_key": _opt_str(
            notes, integrations, "jira_issue_key", "integrations_metadata.jira_issue_key"
        ),
        "labels": _json_text(_opt_map(notes, record, "labels")),
        "metadata": _json_text(_opt_map(notes, record, "metadata")),
        "metrics": _json_text(metrics),
        "integrations_metadata": _json_text(integrations),
        "ai_analysis": _json_text(_opt_map(notes, record, "ai_analysis")),
        "guardrails_info": _json_text(_opt_list(notes, record, "guardrails_info")),
        "redacted_count": _opt_int(
            notes, masking, "total_redact_count", "metrics.data_masking.total_redact_count"
        ),
        "masking_error_count": _opt_int(
            notes, masking, "err_count", "metrics.data_masking.err_count"
        ),
        "stream_truncated": _opt_bool(notes, metrics, "truncated", "metrics.truncated"),
        "review_id": None,
        "review_status": None,
        # Counted from the stream itself: a session marked done after a gateway restart can say
        # event_size 0 and still have a partial stream, which is loaded whole.
        "event_count": len(stream.payloads),
        "stream_status": stream.status,
        "is_final": False,
        "synced_at": synced_at,
    }
    review_row: dict[str, Any] | None = None
    groups: list[dict[str, Any]] = []
    if review is not None:
        review_row, groups = _flatten_review(notes, review, sid, day)
        if review_row is not None:
            session["review_id"] = review_row["review_id"]
            session["review_status"] = review_row["status"]
    # The data contract's finality, judged on the record as hoop sent it (finality.final_from).
    session["is_final"] = is_final(record, synced_at)
    return FlatSession(
        session=session,
        review=review_row,
        review_groups=groups,
        tags=_tags(notes, record),
        start_us=to_micros(start),
        elapsed=stream.elapsed,
        types=stream.types,
        payloads=payloads,
        withheld=withheld,
        stream_message=stream.message if stream.status == STREAM_UNREADABLE else None,
        unknown_fields=sorted(k for k in record if k not in KNOWN_FIELDS),
        warnings=notes.warnings,
    )


def _note_event_types(notes: _Notes, types: list[str]) -> None:
    """One warning per unknown event type of a stream (not one per event: a stream can hold
    millions), saying how many events have it."""
    known = KNOWN_VALUES["event_stream.type"]
    unknown = set(types) - known
    for kind in sorted(unknown):
        count = types.count(kind)
        notes.known(
            "event_stream.type",
            kind,
            f"{count} event(s) of a type this version does not know; stored with their exact bytes",
        )


def _withheld_output(marker: Any, types: list[str]) -> dict[int, tuple[str | None, int]]:
    """The output payloads the extractor did not keep (HOOP_STORE_OUTPUT=hash|none), by seq.

    The marker is this project's own (protect.py): a marker that does not fit its stream means the
    raw file is not what the extractor wrote, so it still rejects the record."""
    if marker is None:
        return {}
    events = marker.get("events") if isinstance(marker, dict) else None
    if not isinstance(events, dict):
        raise RecordRejected(f"{OUTPUT_MARKER} is not an object with events")
    out: dict[int, tuple[str | None, int]] = {}
    for key, value in events.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) < len(types)):
            raise RecordRejected(
                f"{OUTPUT_MARKER} names event {key!r}, which the stream does not have"
            )
        if not (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[1], int)
            and (value[0] is None or isinstance(value[0], str))
        ):
            raise RecordRejected(
                f"{OUTPUT_MARKER} entry for event {key} is not [sha256 or null, length]"
            )
        out[int(key)] = (value[0], value[1])
    return out


def _flatten_review(
    notes: _Notes, review: dict[str, Any], sid: str, day: date
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The review row (None when it has no id) and its group rows."""
    rid = review.get("id")
    status = _opt_str(notes, review, "status", "review.status")
    notes.known("review.status", status)
    review_type = _opt_str(notes, review, "type", "review.type")
    notes.known("review.type", review_type)
    revoke_at = _opt_time(notes, review, "revoke_at", "review.revoke_at")
    if not isinstance(rid, str) or not rid:
        notes.malformed("review.id", rid, "review has no id; no review row loaded")
        return None, []
    duration = review.get("access_duration")
    if duration is not None and (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not math.isfinite(duration)
    ):
        notes.malformed(
            "review.access_duration",
            duration,
            f"review.access_duration is {type(duration).__name__}, expected nanoseconds",
        )
        duration = None
    window_start, window_end = _time_window(notes, review.get("time_window"))
    force_groups = review.get("force_approval_groups")
    if force_groups is not None and (
        not isinstance(force_groups, list) or not all(isinstance(g, str) for g in force_groups)
    ):
        notes.malformed("review.force_approval_groups", force_groups, "not a list of strings")
        force_groups = None
    row = {
        "review_id": rid.lower(),
        "session_id": sid,
        "start_day": day,
        "type": review_type,
        "status": status,
        "access_duration_seconds": duration / 1e9 if duration is not None else None,
        "created_at": _opt_time(notes, review, "created_at", "review.created_at"),
        "revoke_at": revoke_at,
        "time_window_start": window_start,
        "time_window_end": window_end,
        "access_request_rule_name": _opt_str(
            notes, review, "access_request_rule_name", "review.access_request_rule_name"
        ),
        "min_approvals": _opt_int(notes, review, "min_approvals", "review.min_approvals"),
        "force_approval_groups": force_groups,
        "rejection_reason": _opt_str(notes, review, "rejection_reason", "review.rejection_reason"),
    }
    groups_data = review.get("review_groups_data")
    if groups_data is None:
        groups_data = []
    if not isinstance(groups_data, list):
        notes.malformed(
            "review.review_groups_data", groups_data, "not a list; no group rows loaded"
        )
        groups_data = []
    groups: list[dict[str, Any]] = []
    for i, group in enumerate(groups_data):
        what = f"review.review_groups_data[{i}]"
        if not isinstance(group, dict):
            notes.malformed(what, group, "not an object; this group not loaded")
            continue
        gid = group.get("id")
        if not isinstance(gid, str) or not gid:
            notes.malformed(f"{what}.id", gid, "group has no id; this group not loaded")
            continue
        by = group.get("reviewed_by")
        if by is not None and not isinstance(by, dict):
            notes.malformed(f"{what}.reviewed_by", by, "not an object; reviewer columns null")
            by = None
        group_status = _opt_str(notes, group, "status", f"{what}.status")
        notes.known("review.review_groups_data.status", group_status)
        groups.append(
            {
                "review_group_id": gid.lower(),
                "review_id": row["review_id"],
                "session_id": sid,
                "start_day": day,
                "group_name": _opt_str(notes, group, "group", f"{what}.group"),
                "status": group_status,
                "forced_review": _opt_bool(notes, group, "forced_review", f"{what}.forced_review"),
                "reviewer_id": _opt_str(notes, by, "id", f"{what}.reviewed_by.id"),
                "reviewer_email": _opt_str(notes, by, "email", f"{what}.reviewed_by.email"),
                "reviewer_name": _opt_str(notes, by, "name", f"{what}.reviewed_by.name"),
                "reviewer_slack_id": _opt_str(
                    notes, by, "slack_id", f"{what}.reviewed_by.slack_id"
                ),
                "reviewed_at": _opt_time(notes, group, "review_date", f"{what}.review_date"),
            }
        )
    return row, groups


def _time_window(notes: _Notes, value: Any) -> tuple[time | None, time | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict) or not isinstance(value.get("configuration"), dict):
        notes.malformed("review.time_window", value, "not an object with a configuration")
        return None, None
    conf = value["configuration"]
    return (
        _clock(notes, conf.get("start_time"), "start_time"),
        _clock(notes, conf.get("end_time"), "end_time"),
    )


# hoop: gateway/api/review/review.go (ParseTimeWindow) accepts what Go's time.Parse("15:04")
# accepts: an hour of one or two digits (0-23), a colon, exactly two minute digits (00-59).
CLOCK_RE = re.compile(r"^([0-9]{1,2}):([0-9]{2})$")


def _clock(notes: _Notes, value: Any, what: str) -> time | None:
    if value is None:
        return None
    match = CLOCK_RE.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        notes.malformed(
            f"review.time_window.configuration.{what}",
            value,
            "not a time of day as hoop takes it (H:MM or HH:MM, 24-hour)",
        )
        return None
    return time(int(match.group(1)), int(match.group(2)))


def _tags(notes: _Notes, record: dict[str, Any]) -> list[tuple[str, str | None]]:
    tags = record.get("connection_tags")
    if tags is None:
        return []
    if not isinstance(tags, dict):
        notes.malformed(
            "connection_tags",
            tags,
            f"connection_tags is a {type(tags).__name__}, expected an object; no tag rows",
        )
        return []
    out: list[tuple[str, str | None]] = []
    for key in sorted(tags):
        value = tags[key]
        if value is not None and not isinstance(value, str):
            notes.malformed(f"connection_tags.{key}", value, "not a string; tag_value null")
            value = None
        out.append((key, value))
    return out


def _opt_str(notes: _Notes, obj: Any, key: str, what: str | None = None) -> str | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None or isinstance(value, str):
        return value
    notes.malformed(what or key, value, f"{type(value).__name__}, expected a string")
    return None


def _opt_int(notes: _Notes, obj: Any, key: str, what: str | None = None) -> int | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if (
            isinstance(value, float)
            and math.isfinite(value)
            and value.is_integer()
            and abs(value) < 2**63
        ):
            return int(value)
        notes.malformed(what or key, value, "expected an integer")
        return None
    if not -(2**63) <= value < 2**63:
        notes.malformed(what or key, value, "does not fit in 64 bits")
        return None
    return value


def _opt_bool(notes: _Notes, obj: Any, key: str, what: str | None = None) -> bool | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None or isinstance(value, bool):
        return value
    notes.malformed(what or key, value, "expected true or false")
    return None


def _opt_time(
    notes: _Notes, obj: dict[str, Any], key: str, what: str | None = None
) -> datetime | None:
    value = obj.get(key)
    if value is None:
        return None
    try:
        return parse_time(value, what or key)
    except RecordRejected as exc:
        notes.malformed(what or key, value, exc.reason)
        return None


def _opt_map(notes: _Notes, record: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = record.get(key)
    if value is None or isinstance(value, dict):
        return value
    notes.malformed(key, value, f"{type(value).__name__}, expected an object or null")
    return None


def _opt_list(notes: _Notes, record: dict[str, Any], key: str) -> list[Any] | None:
    value = record.get(key)
    if value is None or isinstance(value, list):
        return value
    notes.malformed(key, value, f"{type(value).__name__}, expected a list or null")
    return None


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def group_by_day(records: Iterable[dict[str, Any]]) -> dict[date, list[dict[str, Any]]]:
    """Records keyed by the UTC day of their start_date (records without one are skipped)."""
    days: dict[date, list[dict[str, Any]]] = {}
    for record in records:
        try:
            day = parse_time(record.get("start_date"), "start_date").date()
        except RecordRejected:
            continue
        days.setdefault(day, []).append(record)
    return days


__all__ = [
    "KNOWN_VALUES",
    "DayBuilder",
    "FlatSession",
    "RecordWarning",
    "flatten_session",
    "group_by_day",
]
