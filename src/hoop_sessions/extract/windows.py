"""Closed UTC time windows for listing, and how to split one that offset paging cannot read.

hoop filters ``start_date BETWEEN start AND end`` with both bounds inclusive and truncated to whole
seconds. A day D is therefore listed as ``[D 00:00:00Z, D+1 00:00:00Z]`` and the rows with
``start_date >= D+1`` are dropped afterwards. A window split at second m becomes ``[a, m]`` and
``[m, b]``: the two halves share second m (a session exactly at m.000000 is listed twice and deduped
by id) while every sub-second session after m falls in the second half only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


@dataclass(frozen=True, order=True)
class Window:
    """Inclusive whole-second bounds, in UTC."""

    start: datetime
    end: datetime

    def split(self) -> tuple[Window, Window] | None:
        """Two halves sharing the middle second, or None when the window is one second wide."""
        seconds = int((self.end - self.start).total_seconds())
        if seconds <= 1:
            return None
        middle = self.start + timedelta(seconds=seconds // 2)
        return Window(self.start, middle), Window(middle, self.end)

    def __str__(self) -> str:
        return f"[{format_bound(self.start)}, {format_bound(self.end)}]"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Start of day D and of D+1, in UTC."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def day_window(day: date) -> Window:
    return Window(*day_bounds(day))


def format_bound(moment: datetime) -> str:
    """Whole-second RFC3339 in UTC with a Z, the only form hoop compares correctly."""
    if moment.tzinfo is None:
        raise ValueError("window bounds must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def days_between(first: date, last: date) -> list[date]:
    """Every day from first to last, inclusive."""
    if last < first:
        return []
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def is_closed(day: date, now: datetime, margin: timedelta = timedelta(0)) -> bool:
    """A day can be synced once all of it lies in the past, ``margin`` ago or more."""
    return day_bounds(day)[1] + margin <= now
