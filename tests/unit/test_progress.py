"""Progress figures: the ETA of pipelined days."""

from __future__ import annotations

from hoop_sessions.progress import _Figures


def test_the_eta_never_goes_negative_when_the_next_day_is_read_before_the_last_is_done():
    figures = _Figures(days_total=3)
    # Day 3 fully read while days 1 and 2 are done and day 3 is still loading: 3/3 "done"
    # would be 2 + 1 days; a fraction over 1 gave a negative ETA ("ETA -5 s").
    figures.days_done = 3
    figures.sessions_in_day = 2000
    figures.fetched_in_day = 2000
    assert figures.line().endswith("ETA 0 s")


def test_the_eta_is_unknown_before_anything_is_done():
    assert _Figures(days_total=3).line().endswith("ETA ?")
