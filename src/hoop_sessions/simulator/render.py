"""Session records as the gateway's JSON: key order, nulls, absent keys, escaping, streams.

Two encoders of the gateway matter here. List responses go through gin's PureJSON (no HTML
escaping) and get responses through Go's json.Encoder (`<`, `>`, `&` written as `\\u003c`...);
both end with a newline, and both always escape U+2028 and U+2029. Error bodies go through
gin's c.JSON: escaped, and without the newline.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .lifecycle import GroupState, SessionState
from .plan import SessionPlan
from .streams import (
    UNDECODABLE_MESSAGE,
    WIRE_PROTOCOL_KINDS,
    Event,
    LargeStream,
    format_elapsed,
    pg_queries,
    raw_event_json,
    raw_stream_json,
    rune_count,
    utf8_is_json_safe,
)
from .timefmt import format_ms, format_us

NS_PER_SECOND = 1_000_000_000
_PLACEHOLDER = "\x00event_stream\x00"
_PLACEHOLDER_JSON = b'"\\u0000event_stream\\u0000"'
_UNDECODABLE_JSON = orjson.dumps([UNDECODABLE_MESSAGE])
STREAM_MODES = ("utf8", "base64", "raw-queries")


def go_json(value: Any, *, escape_html: bool, newline: bool) -> bytes:
    return escape(orjson.dumps(value), html=escape_html) + (b"\n" if newline else b"")


def escape(data: bytes, *, html: bool) -> bytes:
    """Apply Go's escaping to orjson output (these bytes only ever occur inside strings)."""
    if html:
        data = data.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")
    if b"\xe2\x80" in data:
        data = data.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
    return data


@dataclass(frozen=True)
class Body:
    """A response body produced piece by piece (large streams), with its length known upfront."""

    length: int
    parts: Callable[[], Iterator[bytes]]

    def join(self) -> bytes:
        return b"".join(self.parts())


@dataclass(frozen=True)
class EncodedStream:
    """The JSON value of `event_stream` in one rendering, and the `event_size` it reports."""

    body: Body
    size: int


class StreamFormatError(Exception):
    """The gateway could not render the stream in the asked format; it answers with a status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _const(data: bytes) -> Body:
    return Body(len(data), lambda: iter((data,)))


def record(
    plan: SessionPlan,
    state: SessionState,
    org_id: str,
    *,
    list_row: bool,
    script: str | None = None,
    stream: bool = False,
    stored_size: int,
    event_size: int | None = None,
    rdp_metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The session object. `script` is what `script.data` holds (get only); `stream` adds a
    placeholder for `event_stream` that `get_body` replaces with the encoded stream.

    `stored_size` is the closed session's `metrics.event_size`; `event_size` overrides the
    top-level field, which the gateway recomputes when it re-encodes the stream."""
    conn = plan.connection
    user = plan.user
    obj: dict[str, Any] = {
        "id": plan.id,
        "org_id": org_id,
        "script": None if list_row else {"data": script or ""},
        "script_size": len(orjson.dumps(plan.script)) - 2,
        "labels": plan.labels,
        "integrations_metadata": plan.integrations,
        "metadata": state.metadata,
        "metrics": _metrics(plan, state, stored_size, rdp_metrics),
        "user": user.email,
        "user_id": user.subject,
        "user_name": user.name,
        "type": conn.type,
        "connection_subtype": conn.subtype,
        "connection": conn.name,
        "resource_name": conn.resource_name,
        "role_name": conn.name,
        "connection_tags": None if conn.tags is None else dict(conn.tags),
        "review": _review(plan, state, list_row=list_row),
        "verb": plan.verb,
        "status": state.status,
        "exit_code": state.exit_code,
    }
    if stream:
        obj["event_stream"] = _PLACEHOLDER
    if event_size is None:
        event_size = stored_size if obj["metrics"] is not None else 0
    obj["event_size"] = event_size
    if plan.batch_id is not None:
        obj["session_batch_id"] = plan.batch_id
    if plan.correlation_id is not None:
        obj["correlation_id"] = plan.correlation_id
    obj["start_date"] = format_us(plan.start_us)
    obj["end_date"] = None if state.end_us is None else format_us(state.end_us)
    obj["ai_analysis"] = None if list_row else plan.ai_analysis
    obj["guardrails_info"] = None if list_row else plan.guardrails
    obj["identity_type"] = plan.identity_type or user.identity_type
    if user.machine_identity_id is not None:
        obj["machine_identity_id"] = user.machine_identity_id
    if plan.recording_format is not None:  # newer gateways only (HOOP_API.md)
        obj["recording_format"] = plan.recording_format
    return obj


def _metrics(
    plan: SessionPlan, state: SessionState, stored_size: int, rdp: dict[str, Any] | None
) -> dict[str, Any] | None:
    if not state.finished or plan.ending == "credentials" or plan.reaped_us is not None:
        # The sweeper sets only status and end date.
        # hoop: gateway/models/connection_credentials.go (CloseExpiredCredentialSessions)
        return None
    if rdp is not None:
        return rdp  # hoop: gateway/rdp/recorder.go (Close)
    return metrics(plan, stored_size)


# A gateway that lost a session's WAL state (a restart) marks it done with fresh metrics; the
# shallow jsonb merge replaces what the flushes had counted.
# hoop: gateway/transport/plugins/audit/wal.go (closeSessionWAL, case 3)
# hoop: gateway/transport/plugins/audit/metrics.go (newSessionMetric)
_RESTART_METRICS: dict[str, Any] = {
    "data_masking": {
        "err_count": 0,
        "info_types": {},
        "total_redact_count": 0,
        "transformed_bytes": 0,
    },
    "event_size": 0,
    "truncated": False,
}


def metrics(plan: SessionPlan, event_size: int) -> dict[str, Any]:
    """Stored when the session closes; a Go map, so its keys are sorted."""
    if plan.ending == "restart":
        return _RESTART_METRICS
    out: dict[str, Any] = {}
    if plan.masking is not None:
        out["data_masking"] = plan.masking
    out["event_size"] = event_size
    if plan.truncated:
        out["truncated"] = True
    return out


def _review(plan: SessionPlan, state: SessionState, *, list_row: bool) -> dict[str, Any] | None:
    review = plan.review
    if review is None or state.review is None:
        return None
    policy = review.policy
    window = None
    if policy.time_window is not None:
        configuration = {"end_time": policy.time_window.end, "start_time": policy.time_window.start}
        window = {"type": "time_range", "configuration": configuration}
    revoke_at = state.review.revoke_at_us
    obj: dict[str, Any] = {
        "id": review.id,
        "type": review.type,
        "access_duration": review.access_duration_s * NS_PER_SECOND,
        "status": state.review.status,
        "created_at": format_ms(plan.start_us),
        "revoke_at": None if revoke_at is None else format_ms(revoke_at),
        "review_groups_data": [_group(g) for g in state.review.groups],
        # The list query does not select these four.
        "time_window": None if list_row else window,
        "access_request_rule_name": None if list_row else policy.rule_name,
        "min_approvals": None if list_row else policy.min_approvals,
        "force_approval_groups": None if list_row else (list(policy.force_approval_groups) or None),
    }
    if state.review.status == "REJECTED" and review.rejection_reason is not None:
        obj["rejection_reason"] = review.rejection_reason
    return obj


def _group(group: GroupState) -> dict[str, Any]:
    reviewer = group.reviewer
    return {
        "id": group.plan.id,
        "group": group.plan.group,
        "status": group.status,
        "reviewed_by": None
        if reviewer is None
        else {
            "id": reviewer.reviewer_id,
            "name": reviewer.name,
            "email": reviewer.email,
            "slack_id": reviewer.slack_id,
        },
        "review_date": None if group.reviewed_us is None else format_ms(group.reviewed_us),
        "forced_review": group.plan.forced,
    }


def list_row(obj: dict[str, Any]) -> bytes:
    return escape(orjson.dumps(obj), html=False)


def get_body(obj: dict[str, Any], stream: EncodedStream | None) -> bytes | Body:
    """The get response: Go's json.Encoder output, the stream spliced in where it belongs."""
    data = escape(orjson.dumps(obj), html=True) + b"\n"
    if stream is None:
        return data
    head, tail = data.split(_PLACEHOLDER_JSON, 1)
    inner = stream.body
    if inner.length < 1 << 20:
        return head + inner.join() + tail

    def parts() -> Iterator[bytes]:
        yield head
        yield from inner.parts()
        yield tail

    return Body(len(head) + inner.length + len(tail), parts)


# --- event stream renderings -------------------------------------------------------------


def encode_small(
    plan: SessionPlan, events: Sequence[Event], mode: str | None, stored: int, *, raw: bytes | None
) -> EncodedStream:
    """`events` are the ones stored so far, `raw` their JSON when already at hand, and `stored`
    the event_size of the closed session."""
    kind = plan.stream.kind
    if mode is None or (mode == "raw-queries" and kind not in WIRE_PROTOCOL_KINDS):
        if kind == "undecodable":
            return EncodedStream(_const(_UNDECODABLE_JSON), stored)
        return EncodedStream(_const(raw if raw is not None else raw_stream_json(events)), stored)
    if kind == "undecodable":
        raise StreamFormatError(500, "failed parsing blob stream")
    if mode == "raw-queries":
        out = []
        size = 0
        for event in events:
            queries = pg_queries(event.payload) if event.type == "i" else []
            if queries:
                size += len(queries[0])
                out.append(raw_event_json(Event(event.elapsed_us, "i", queries[0])))
        data = b"[" + b",".join(out) + b"]" if out else b"null"
        return EncodedStream(_const(data), size)
    output = b"".join(e.payload for e in events if e.type in ("o", "e"))
    if mode == "base64":
        encoded = base64.b64encode(output)
        return EncodedStream(_const(b'["' + encoded + b'"]'), len(encoded))
    # utf8
    if not utf8_is_json_safe(output):
        return EncodedStream(_const(_UNDECODABLE_JSON), rune_count(output))
    data = escape(orjson.dumps([output.decode()]), html=True)
    return EncodedStream(_const(data), rune_count(output))


def large_stored_size(stream: LargeStream) -> int:
    return _large_raw(stream, stream.count).length


def encode_large(
    stream: LargeStream, cutoff_us: int | None, mode: str | None, stored: int
) -> EncodedStream:
    visible = stream.visible(cutoff_us)
    if mode is None or mode == "raw-queries":
        return EncodedStream(_large_raw(stream, visible), stored)
    total = sum(stream.payload_size(k) for k in range(visible))
    if mode == "base64":
        encoded_length = 4 * -(-total // 3)

        def b64_parts() -> Iterator[bytes]:
            yield b'["'
            for k in range(visible):  # each payload but the last is a multiple of 3 bytes
                yield base64.b64encode(stream.payload(k))
            yield b'"]'

        return EncodedStream(Body(encoded_length + 4, b64_parts), encoded_length)

    def utf8_parts() -> Iterator[bytes]:
        yield b'["'
        for k in range(visible):
            yield stream.payload(k).replace(b"\n", b"\\n")
        yield b'"]'

    newlines = sum(stream.newlines(k) for k in range(visible))
    return EncodedStream(Body(total + newlines + 4, utf8_parts), total)


def _large_raw(stream: LargeStream, visible: int) -> Body:
    def piece_length(k: int) -> int:
        b64 = 4 * -(-stream.payload_size(k) // 3)
        return len(format_elapsed(stream.elapsed_us(k))) + len(b'[,"o",""]') + b64

    length = 2 + sum(piece_length(k) for k in range(visible)) + max(visible - 1, 0)

    def parts() -> Iterator[bytes]:
        yield b"["
        for k in range(visible):
            event = Event(stream.elapsed_us(k), "o", stream.payload(k))
            yield (b"," if k else b"") + raw_event_json(event)
        yield b"]"

    return Body(length, parts)
