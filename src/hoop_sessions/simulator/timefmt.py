"""Time values as the gateway writes and reads them.

Times travel inside the simulator as integer microseconds since the Unix epoch (UTC): cheap to
compare and sort, and exactly the precision Postgres stores for session times.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta

US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Go's time.Parse(time.RFC3339, ...): fixed-width fields, upper-case T and Z, and a fraction
# accepted after the seconds even though the layout has none.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,]\d+)?(Z|[+-](\d{2}):(\d{2}))"
)


def to_us(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def day_start_us(day: date) -> int:
    return (day - date(1970, 1, 1)).days * 86_400 * US


def day_of(us: int) -> date:
    return date(1970, 1, 1) + timedelta(days=us // (86_400 * US))


def format_us(us: int) -> str:
    """RFC3339 with up to microseconds, trailing zeros trimmed (Go's RFC3339Nano)."""
    seconds, micros = divmod(us, US)
    t = time.gmtime(seconds)
    text = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    if micros:
        text += "." + f"{micros:06d}".rstrip("0")
    return text + "Z"


def format_ms(us: int) -> str:
    """Review times: Postgres renders them at millisecond precision, Go trims the zeros."""
    return format_us(us - us % 1000)


def format_s(us: int) -> str:
    """Whole seconds (Go's time.RFC3339)."""
    return format_us(us - us % US)


def parse_bound(text: str) -> int | None:
    """A list bound as the gateway compares it, or None when Go would refuse the value.

    The gateway formats the parsed value back with time.RFC3339 (dropping the fraction) and
    Postgres compares that against a timestamp without time zone (dropping the offset), so the
    bound is the wall-clock time as written, truncated to the second.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if match.group(7) != "Z" and (int(match.group(8)) > 23 or int(match.group(9)) > 59):
        return None
    try:
        wall = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    return to_us(wall)
