"""The benchmark reads the nightly run's figures from the report `hoop-sessions sync` prints."""

from __future__ import annotations

from benchmarks.contenders import nightly_report

REPORT = """\
2026-11-15: not listed again (older than HOOP_ROLLING_DAYS): 2000 sessions as listed before, 40 not final read again by id, nothing changed since the last sync; 40 requests
2026-11-16: not listed again (older than HOOP_ROLLING_DAYS): 1999 sessions as listed before, 45 not final read again by id, loaded 1999, rejected 0 (1954 unchanged, not read again), 45 requests, 0 retries
2026-11-19: listed 2000, nothing changed since the last sync; 63 requests
2026-11-20: listed 2000, loaded 2000, rejected 0 (1960 unchanged, not read again), 61 requests, 2 retries
2026-11-21: already loaded and final, skipped (use --redo to sync it again)
"""


def test_days_listed_again_and_days_read_by_id_are_both_counted():
    assert nightly_report(REPORT) == {
        "days": 4,
        "sessions": 7999,
        "requests": 209,
        "rebuilt": 2,
        "not_listed": 2,
    }
