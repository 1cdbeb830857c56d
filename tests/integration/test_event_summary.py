"""The summary each session row carries of its other rows, kept by the load (``warehouse.session_summary()``).

Against real DuckDB files built through the ingest path: after a load, after a day is loaded again
with changed content, and in a warehouse made before the summary existed, every session's summary
equals what its connection_tags, reviews, review_groups and session_events rows say.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from hoop_sessions.config import Settings
from hoop_sessions.sync.day import load_and_record
from hoop_sessions.sync.ingest import ingest_records
from hoop_sessions.warehouse import load as warehouse
from tests.records import DROP, b64, session_record

DAY = date(2026, 11, 1)
NEXT_DAY = date(2026, 11, 2)
SYNCED = datetime(2026, 11, 10, tzinfo=UTC)
SUMMARY = [name for name, _, _ in warehouse.session_summary()]


def sid(n: int) -> str:
    return f"0b9f6a3c-1111-4222-8333-{n:012d}"


def group(n: int, status: str, email: str | None, *, forced: bool = False) -> dict[str, Any]:
    return {
        "id": f"bb9f6a3c-1111-4222-8333-{n:012d}",
        "group": f"group-{n % 3}",
        "status": status,
        "reviewed_by": None if email is None else {"id": f"u-{n}", "name": "R", "email": email},
        "review_date": None if email is None else "2026-11-01T10:01:00Z",
        "forced_review": forced,
    }


def review(n: int, status: str, groups: list[dict[str, Any]]) -> dict[str, Any]:
    body = session_record()["review"]
    return body | {
        "id": f"aa9f6a3c-1111-4222-8333-{n:012d}",
        "status": status,
        "review_groups_data": groups,
    }


def events(*elapsed: float) -> list[list[Any]]:
    return [[e, "o", b64(f"row {i}\n".encode())] for i, e in enumerate(elapsed)]


def day_records(day: date, *, changed: bool = False) -> list[dict[str, Any]]:
    """A day of sessions of every shape: tags or none, reviews with mixed groups or none, events
    in any order or none."""
    first = 0 if day == DAY else 100
    stamp = day.isoformat()
    return [
        session_record(
            id=sid(first + 1),
            start_date=f"{stamp}T10:00:00.5Z",
            connection_tags={"environment": "staging" if changed else "prod", "team": None},
            review=review(
                first + 1,
                "APPROVED",
                [
                    group(first + 1, "APPROVED", "Bob@example.com"),
                    group(first + 2, "APPROVED", "alice@example.com"),
                    group(first + 3, "APPROVED", "alice@example.com", forced=True),
                    group(first + 4, "REJECTED", "carol@example.com"),
                    group(first + 5, "PENDING", None),
                ]
                if not changed
                else [group(first + 6, "REJECTED", "dave@example.com")],
            ),
            event_stream=events(3.5, 0.25, 90.0) if not changed else events(7.0),
        ),
        session_record(
            id=sid(first + 2),
            start_date=f"{stamp}T11:00:00Z",
            connection_tags=DROP,
            review=DROP,
            event_stream=[],
        ),
        session_record(
            id=sid(first + 3),
            start_date=f"{stamp}T12:00:00Z",
            connection_tags={"environment": "dev"},
            review=review(first + 3, "PENDING", [group(first + 7, "PENDING", None)]),
            event_stream=events(0.0, 0.0),
        ),
        *(
            [session_record(id=sid(first + 4), start_date=f"{stamp}T13:00:00Z", review=DROP)]
            if changed
            else []
        ),
    ]


def recomputed(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Every session's summary, worked out in Python from the rows of the other tables."""
    tags: dict[str, dict[str, str | None]] = defaultdict(dict)
    for session_id, key, value in con.execute(
        "SELECT session_id, tag_key, tag_value FROM connection_tags"
    ).fetchall():
        tags[session_id][key] = value
    cursor = con.execute("SELECT * FROM reviews")
    names = [d[0] for d in cursor.description or ()]
    reviews = {}
    for row in cursor.fetchall():
        record = dict(zip(names, row, strict=True))
        reviews[record["review_id"]] = {
            k: v for k, v in record.items() if k not in ("session_id", "start_day")
        }
    approvers: dict[str, set[str]] = defaultdict(set)
    for review_id, email in con.execute(
        "SELECT review_id, reviewer_email FROM review_groups WHERE status = 'APPROVED'"
    ).fetchall():
        if email is not None:
            approvers[review_id].add(email)
    times: dict[str, list[datetime]] = defaultdict(list)
    for session_id, when in con.execute(
        "SELECT session_id, event_time FROM session_events"
    ).fetchall():
        if when is not None:
            times[session_id].append(when)
    out = {}
    for session_id, review_id in con.execute(
        "SELECT session_id, review_id FROM sessions"
    ).fetchall():
        stream = times.get(session_id)
        out[session_id] = {
            "connection_tag_map": tags.get(session_id),
            "review": reviews.get(review_id),
            "approved_by": sorted(approvers[review_id]) if approvers.get(review_id) else None,
            "first_event_time": min(stream) if stream else None,
            "last_event_time": max(stream) if stream else None,
            "timed_event_count": len(stream) if stream else None,
        }
    return out


def stored(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    cursor = con.execute(f"SELECT session_id, {', '.join(SUMMARY)} FROM sessions")
    return {row[0]: dict(zip(SUMMARY, row[1:], strict=True)) for row in cursor.fetchall()}


def check(path: Path) -> dict[str, dict[str, Any]]:
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        summary = stored(con)
        assert summary == recomputed(con)
    return summary


def test_a_load_keeps_each_sessions_summary_of_its_other_rows(tmp_path: Path) -> None:
    path = ingest_records(
        day_records(DAY) + day_records(NEXT_DAY), data_dir=tmp_path, synced_at=SYNCED
    )
    summary = check(path)

    full = summary[sid(1)]
    assert full["connection_tag_map"] == {"environment": "prod", "team": None}
    assert full["review"]["status"] == "APPROVED" and full["review"]["review_id"].startswith(
        "aa9f6a3c"
    )
    assert full["approved_by"] == ["Bob@example.com", "alice@example.com"]
    assert full["timed_event_count"] == 3
    assert (full["last_event_time"] - full["first_event_time"]).total_seconds() == 89.75

    bare = summary[sid(2)]
    assert bare == dict.fromkeys(SUMMARY)
    assert summary[sid(3)]["approved_by"] is None  # a review nobody approved yet


def test_loading_a_day_again_replaces_its_summaries_and_leaves_the_other_days(
    tmp_path: Path,
) -> None:
    ingest_records(day_records(DAY) + day_records(NEXT_DAY), data_dir=tmp_path, synced_at=SYNCED)
    before = check(tmp_path / "warehouse.duckdb")

    path = ingest_records(day_records(DAY, changed=True), data_dir=tmp_path, synced_at=SYNCED)
    after = check(path)

    assert after[sid(1)]["connection_tag_map"] == {"environment": "staging", "team": None}
    assert after[sid(1)]["approved_by"] is None
    assert after[sid(1)]["timed_event_count"] == 1
    assert after[sid(4)]["review"] is None and after[sid(4)]["timed_event_count"] == 3
    assert {k: v for k, v in after.items() if k >= sid(100)} == {
        k: v for k, v in before.items() if k >= sid(100)
    }


def test_a_warehouse_made_before_the_summary_gets_it_on_the_next_load(tmp_path: Path) -> None:
    path = ingest_records(
        day_records(DAY) + day_records(NEXT_DAY), data_dir=tmp_path, synced_at=SYNCED
    )
    expected = check(path)
    path = Settings(data_dir=tmp_path).load_path  # the copy that loads write
    with duckdb.connect(str(path)) as con:
        for name in SUMMARY:
            con.execute(f'ALTER TABLE sessions DROP COLUMN "{name}"')
        assert warehouse.missing_session_summary(con) == SUMMARY

    load_and_record(
        Settings(data_dir=tmp_path), NEXT_DAY
    )  # one day's load brings every day's summary

    assert check(path) == expected
