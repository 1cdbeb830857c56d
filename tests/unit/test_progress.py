"""Progress figures: the ETA of pipelined days, several of them read at once."""

from __future__ import annotations

from datetime import date

from hoop_sessions.progress import _Figures

D1, D2, D3 = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)


def test_the_eta_never_goes_negative_when_the_next_day_is_read_before_the_last_is_done():
    figures = _Figures(days_total=3)
    # Days 1 and 2 done, day 3 fully read and still loading: "2 + 1 days" done out of 3. A
    # fraction over 1 once gave a negative ETA ("ETA -5 s").
    figures.listed(D3, 2)
    for day in (D1, D2):
        figures.listed(day, 1)
        figures.fetched(day)
        figures.done(day, {"requests": 3})
    figures.fetched(D3)
    figures.fetched(D3)
    figures.fetched(D3)  # a session counted twice (a retry after a reject) stays within the day
    assert figures.line().endswith("ETA 0 s")
    assert figures.line().startswith("days 2/3, sessions 5, ")


def test_days_read_at_once_each_count_their_own_share():
    figures = _Figures(days_total=4)
    figures.listed(D1, 100)
    figures.listed(D2, 10)
    assert figures.fetched(D1) == 1
    for _ in range(5):
        figures.fetched(D2)
    # Day 1 at 1%, day 2 at 50%: 0.51 of 4 days.
    assert abs(figures._day_fraction() - 0.51) < 1e-9
    figures.done(D2, {"requests": 12, "retries": 2})
    assert abs(figures._day_fraction() - 0.01) < 1e-9
    assert figures.days_done == 1 and figures.requests == 12 and figures.retries == 2
    assert figures.sessions_done == 6


def test_the_eta_is_unknown_before_anything_is_done():
    assert _Figures(days_total=3).line().endswith("ETA ?")


def test_the_bar_names_the_earliest_day_in_progress_and_never_moves_back():
    from hoop_sessions.progress import RichProgress

    bar = RichProgress(days_total=3)
    try:
        task = bar._bar.tasks[0]
        bar.day_listed(D1, 4)
        for _ in range(4):
            bar.figures.fetched(D1)
        bar.day_listed(D2, 100)  # read ahead while day 1 is still loading
        assert task.description == str(D1)
        seen = task.completed
        bar.day_listed(D3, 1000)  # a third day listed: the share of the days in progress drops
        assert task.description == str(D1) and task.completed >= seen
        bar.day_done(D1, {"sessions_listed": 4, "listed_again": True})
        assert task.description == str(D2) and task.completed >= 1
    finally:
        bar.close()


def test_a_day_not_listed_again_is_not_said_to_be_listed(caplog):
    import logging

    from hoop_sessions.progress import LogProgress

    caplog.set_level(logging.INFO)
    progress = LogProgress(days_total=1)
    progress.day_listed(D1, 300, listed=False)
    assert "not listed again" in caplog.text and "300 sessions listed" not in caplog.text
