"""A day past the rolling window is not listed again: its previous listing stands in for it."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hoop_sessions.extract.listing import WindowResult, listed_before
from hoop_sessions.extract.windows import Window

DAY = date(2026, 11, 1)
A, B, C, D, E = (f"0b9f6a3c-1111-4222-8333-00000000000{n}" for n in range(1, 6))


def header(**changes: object) -> dict[str, object]:
    morning = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 1, 12, tzinfo=UTC))
    evening = Window(
        datetime(2026, 11, 1, 12, tzinfo=UTC), datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC)
    )
    first, second = (
        WindowResult(morning, session_ids=[A, B, E]),
        WindowResult(evening, session_ids=[C, D]),
    )
    first.stats.pages, first.stats.requests = 2, 9
    doc: dict[str, object] = {
        "order": [C, A, D],  # bodies in the previous file, in its order
        "fingerprints": {A: "fa", C: "fc", D: "fd"},
        "windows": [first.to_json(), second.to_json()],
        "rejects": [
            {"session_id": E, "stage": "list", "reason": "list row start_date is not a time"},
            {"session_id": B, "stage": "get", "reason": "listed but not found when read (404)"},
        ],
    }
    doc.update(changes)
    return doc


def test_the_previous_listing_gives_the_ids_their_order_digests_and_list_rejects():
    before = listed_before(header(), DAY)
    assert before is not None
    windows, listed, order = before
    # The previous bodies' order, then the session rejected when read (it is read again).
    assert order == [C, A, D, B]
    # A row rejected when listed stays rejected, and is not read.
    assert E not in listed.by_id
    assert [r["session_id"] for r in listed.rejects] == [E]
    assert listed.fingerprints == {A: "fa", B: "", C: "fc", D: "fd"}
    # Each session keeps the window that listed it; the windows count only this run's requests.
    assert [listed.by_id[sid][1] for sid in (A, B)] == [windows[0], windows[0]]
    assert [listed.by_id[sid][1] for sid in (C, D)] == [windows[1], windows[1]]
    assert [w.session_ids for w in windows] == [[A, B, E], [C, D]]
    assert [(w.stats.pages, w.stats.requests) for w in windows] == [(0, 0), (0, 0)]
    assert windows[1].window.end == datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC)


def test_a_previous_file_that_does_not_say_enough_makes_the_day_listed_again():
    assert listed_before({}, DAY) is None
    assert listed_before(header(windows=[]), DAY) is None
    assert listed_before(header(order=None), DAY) is None
    assert listed_before(header(windows=[{"window_start": "yesterday"}]), DAY) is None
    no_ids = header()
    del no_ids["windows"][0]["session_ids"]  # type: ignore[index]
    assert listed_before(no_ids, DAY) is None
