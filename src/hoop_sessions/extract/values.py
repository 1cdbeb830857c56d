"""Record values checked and converted without Arrow: what reading hoop needs before building.

The extractor (in the process that talks to hoop) and the builder share these. Keeping them free
of pyarrow keeps the reading process from importing Arrow and NumPy at all (about 50 MiB of
resident memory and 0.2 s of start-up), since building happens in a worker process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypedDict

import orjson

UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PAYLOAD_LIMIT = 4000
# Set by the extractor on a record whose output payloads it did not keep (see protect.py).
OUTPUT_MARKER = "hoop_sessions_output"


class RecordRejected(ValueError):
    """The record cannot be flattened; ``reason`` says why, for a person."""

    def __init__(self, reason: str, session_id: str | None = None) -> None:
        self.reason = reason
        self.session_id = session_id
        super().__init__(reason)


def parse_time(value: Any, what: str) -> datetime:
    """RFC3339 with up to nanoseconds into an aware UTC datetime (microseconds kept)."""
    if not isinstance(value, str):
        raise RecordRejected(f"{what} is {type(value).__name__}, expected an RFC3339 string")
    match = RFC3339_RE.match(value)
    if match is None:
        raise RecordRejected(f"{what} {value[:60]!r} is not an RFC3339 time")
    frac = match.group(7) or ""
    # fromisoformat wants at most 6 fraction digits: hoop sends up to 6, Go may send 9.
    text = value[: match.start(7) - 1] if frac else value[: match.end(6)]
    text = text + ("." + (frac + "000000")[:6] if frac else "") + _offset(match.group(8))
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError as exc:
        raise RecordRejected(f"{what} {value[:60]!r} is not a valid time: {exc}") from None


def _offset(tz: str) -> str:
    return "+00:00" if tz in ("Z", "z") else tz


def to_micros(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# The longest JIT access a connection can grant: a revoked or expired JIT session that is still
# connected keeps recording until the client disconnects, at the latest this long after its
# revoke_at (each session runs with a timeout of the full access duration from its own connect).
# hoop: gateway/transport/plugins/review/review.go
MAX_ACCESS = timedelta(hours=48)
# Review statuses of a request that never ran and never will (EXPIRED: newer gateways).
NEVER_RUN_REVIEW_STATUSES = frozenset({"REJECTED", "EXPIRED"})
# JIT statuses after which no new access is granted.
ENDED_JIT_STATUSES = frozenset({"REVOKED", "EXPIRED"})


def final_from(record: dict[str, Any]) -> datetime | None:
    """From when the record, as it is, can no longer change on the gateway; None: not as it is.

    The data contract's definition (README, "Finality"):
    - closed: ``done`` with an ``end_date`` (the gateway wrote its last events and metrics);
    - provably never run: its review was REJECTED (or EXPIRED on newer gateways);
    - a JIT session with no ``end_date`` whose access ended (review REVOKED, or APPROVED past its
      ``revoke_at``): final once the longest possible access has passed since ``revoke_at``,
      because revocation sets ``status = done`` without closing the connection
      (hoop: gateway/transport/plugins/review/review.go).
    A session recorded through an inspection sidecar that the gateway reaped can take events again
    (``metadata.sidecar.reaped_at``): never final. A malformed time makes it not final (read again).
    """
    metadata = record.get("metadata")
    sidecar = metadata.get("sidecar") if isinstance(metadata, dict) else None
    if isinstance(sidecar, dict) and sidecar.get("reaped_at") not in (None, ""):
        return None
    review = record.get("review")
    review = review if isinstance(review, dict) else None
    end_date = record.get("end_date")
    if record.get("status") == "done" and end_date not in (None, ""):
        return EPOCH
    if review is None:
        return None
    status = review.get("status")
    if status in NEVER_RUN_REVIEW_STATUSES:
        return EPOCH
    if (
        review.get("type") == "jit"
        and end_date in (None, "")
        and (status in ENDED_JIT_STATUSES or status == "APPROVED")
    ):
        try:
            revoke_at = parse_time(review.get("revoke_at"), "review.revoke_at")
        except RecordRejected:
            return None
        return revoke_at + MAX_ACCESS
    return None


def is_final(record: dict[str, Any], now: datetime) -> bool:
    """True when the record will not change any more as seen at ``now`` (see ``final_from``)."""
    since = final_from(record)
    return since is not None and since <= now


@dataclass(frozen=True)
class Reject:
    start_day: date
    session_id: str | None
    stage: str
    reason: str
    payload: str | None
    seen_at: datetime


def truncate_payload(payload: Any) -> str:
    """A JSON text of the offending record, cut to a size a table can hold."""
    if isinstance(payload, bytes):
        text = payload[: PAYLOAD_LIMIT * 2].decode("utf-8", "replace")
    elif isinstance(payload, str):
        text = payload
    else:
        try:
            text = orjson.dumps(payload, default=str).decode()
        except TypeError:
            text = repr(payload)
    return text if len(text) <= PAYLOAD_LIMIT else text[:PAYLOAD_LIMIT] + f"... ({len(text)} chars)"


ADMIN_GROUPS = frozenset({"admin", "auditor"})


class Principal(TypedDict, total=False):
    """Who the API token is: what ``sync.preflight`` keeps of ``GET /api/userinfo``.

    Every key is optional: preflight writes all of them, but the fixture principal has no
    ``org_id`` and a raw file read back may hold an older or damaged record.
    """

    id: str | None
    email: str | None
    groups: list[str]
    is_admin: bool
    org_id: str | None


def principal_sees_all(principal: Principal) -> bool:
    groups = principal.get("groups") or []
    return bool(principal.get("is_admin")) or any(g in ADMIN_GROUPS for g in groups)


def describe_principal(principal: Principal) -> str:
    who = principal.get("email") or principal.get("id") or "unknown"
    groups = ",".join(str(g) for g in principal.get("groups") or [])
    return f"{who} (groups: {groups})"


@dataclass(frozen=True)
class BuildResult:
    """What building a day made. Here rather than in build.py: the build worker sends it back to
    the reading process, and unpickling it must not import Arrow there."""

    day: date
    sessions_listed: int
    sessions_loaded: int
    sessions_rejected: int
    rows: dict[str, int]
    unknown_fields: dict[str, int]
    stream_status: dict[str, int]
    session_status: dict[str, int]
    # From when each loaded session's record is final (ISO time; None: not as it is).
    final_from: dict[str, str | None] = field(default_factory=dict)
    # The day's record_warnings by "kind field" ("unknown_value field=value" for a value outside
    # its known set): how many sessions had each. Empty when every record was as expected.
    warnings: dict[str, int] = field(default_factory=dict)


def warning_line(warnings: dict[str, int], *, limit: int = 5) -> str:
    """The most frequent warnings of a build as one line, e.g. for a run summary."""
    top = sorted(warnings.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    text = "; ".join(f"{key} x{count}" for key, count in top)
    more = len(warnings) - len(top)
    return text + (f"; and {more} more" if more > 0 else "")
