import itertools
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from hoop_sessions.extract.windows import Window, day_window, days_between, format_bound, is_closed


def test_a_day_is_listed_from_its_midnight_to_the_next_midnight_inclusive():
    w = day_window(date(2026, 3, 1))
    assert format_bound(w.start) == "2026-03-01T00:00:00Z"
    assert format_bound(w.end) == "2026-03-02T00:00:00Z"


def test_bounds_are_sent_as_whole_utc_seconds_with_z():
    moment = datetime(2026, 3, 1, 2, 3, 4, 999_999, tzinfo=timezone(timedelta(hours=2)))
    assert format_bound(moment) == "2026-03-01T00:03:04Z"


def test_naive_bounds_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        format_bound(datetime(2026, 3, 1))


def test_split_halves_share_the_middle_second_so_no_sub_second_session_falls_between():
    w = day_window(date(2026, 3, 1))
    left, right = w.split()
    assert left.start == w.start and right.end == w.end
    assert left.end == right.start == datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_splitting_stops_at_one_second():
    start = datetime(2026, 3, 1, 5, tzinfo=UTC)
    assert Window(start, start + timedelta(seconds=1)).split() is None
    two = Window(start, start + timedelta(seconds=2)).split()
    assert two == (
        Window(start, start + timedelta(seconds=1)),
        Window(start + timedelta(seconds=1), start + timedelta(seconds=2)),
    )


def test_repeated_splitting_covers_the_window_without_gaps():
    windows = [day_window(date(2026, 3, 1))]
    for _ in range(12):
        windows = [half for w in windows for half in (w.split() or (w,))]
    assert windows[0].start == datetime(2026, 3, 1, tzinfo=UTC)
    assert windows[-1].end == datetime(2026, 3, 2, tzinfo=UTC)
    for a, b in itertools.pairwise(windows):
        assert a.end == b.start


def test_days_between_is_inclusive_and_empty_when_reversed():
    assert days_between(date(2026, 1, 30), date(2026, 2, 1)) == [
        date(2026, 1, 30),
        date(2026, 1, 31),
        date(2026, 2, 1),
    ]
    assert days_between(date(2026, 2, 1), date(2026, 1, 30)) == []


def test_a_day_is_closed_only_once_the_next_day_has_begun():
    day = date(2026, 3, 1)
    assert not is_closed(day, datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC))
    assert is_closed(day, datetime(2026, 3, 2, tzinfo=UTC))
