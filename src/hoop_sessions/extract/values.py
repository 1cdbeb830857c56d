"""Record values checked and converted without Arrow: ids, times, payloads and rejects.

The extractor (in the process that reads hoop) and the builder (in the worker) share these;
keeping them free of pyarrow keeps Arrow and NumPy out of the reading process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

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
