"""Access through hoop's JIT grants, one-time reviews and session endings, as the rules read it.

hoop lets a session with no review of its own through when the same user has an approved JIT
grant on the same connection (gateway/transport/plugins/review/review.go), and sets revoke_at on
every approval, one-time ones included (gateway/api/review/review.go). Each test loads hoop
records through the real flatten-and-load path and asserts the exact sessions a rule flags, or
the exact rows of the ``session_access`` view.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from hoop_sessions.compliance.rules import get_rule, run_rule

from .conftest import Flagged, Load
from .hoop_records import DAY, at, events, group, jit_review, name_of, review, rid, session

NEXT_DAY = DAY + dt.timedelta(days=1)


def access_rows(
    warehouse: Path, *, time_zone: str = "UTC"
) -> dict[str, tuple[str | None, str | None]]:
    """Each session's name -> (access_via, name of the session whose review gave access)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute(f"SET TimeZone = '{time_zone}'")
        rows = con.execute(
            "SELECT session_id, access_via, grant_session_id FROM session_access"
        ).fetchall()
    return {
        name_of(sid): (via, None if grant is None else name_of(grant)) for sid, via, grant in rows
    }


def grant_of_alice_on_pg_prod() -> list[dict[str, object]]:
    """alice asks at 09:55 and is granted pg-prod from 10:00 to 11:00."""
    return [
        session(
            "grant-asker",
            start=at("09:55"),
            minutes=10,
            review_=jit_review(approved=at("10:00"), minutes=60),
        )
    ]


def test_a_jit_grant_covers_later_sessions_of_its_user_on_its_connection_while_it_lasts(
    load: Load, flagged: Flagged
) -> None:
    warehouse = load(
        [
            *grant_of_alice_on_pg_prod(),
            session("covered", start=at("10:20")),
            session("covered-at-approval", start=at("10:00")),
            session("before-approval", start=at("09:58")),
            session("after-grant-ended", start=at("11:00")),
            session("other-user", start=at("10:20"), user="bob@example.com"),
            session("other-connection", start=at("10:20"), connection="pg-prod-eu"),
        ]
    )
    assert access_rows(warehouse) == {
        "grant-asker": ("own_review", "grant-asker"),
        "covered": ("jit_grant", "grant-asker"),
        "covered-at-approval": ("jit_grant", "grant-asker"),
        "before-approval": (None, None),
        "after-grant-ended": (None, None),
        "other-user": (None, None),
        "other-connection": (None, None),
    }
    assert flagged(warehouse, "prod_access_without_approval") == {
        "before-approval",
        "after-grant-ended",
        "other-user",
        "other-connection",
    }


def test_a_grant_approved_before_midnight_covers_a_session_of_the_next_day(
    load: Load, flagged: Flagged
) -> None:
    warehouse = load(
        [
            session(
                "late-asker",
                start=at("23:20"),
                minutes=5,
                review_=jit_review(approved=at("23:30"), minutes=60),
            ),
            session("after-midnight", start=at("00:10", NEXT_DAY)),
            session("after-that-grant", start=at("00:40", NEXT_DAY)),
        ]
    )
    assert access_rows(warehouse)["after-midnight"] == ("jit_grant", "late-asker")
    # An analyst's own time zone changes nothing: grants are split into UTC days.
    assert access_rows(warehouse, time_zone="America/Los_Angeles") == access_rows(warehouse)
    assert flagged(warehouse, "prod_access_without_approval", start=NEXT_DAY) == {
        "after-that-grant"
    }


def test_a_manual_revoke_ends_the_grant_although_hoop_keeps_its_revoke_at(
    load: Load, flagged: Flagged
) -> None:
    revoked = jit_review(approved=at("10:00"), minutes=60, revoked=at("10:20"))
    warehouse = load(
        [
            session(
                "revoked-asker",
                start=at("09:55"),
                minutes=40,
                review_=revoked,
                # 09:55 + 1800 s = 10:25: past the revoke, before the original revoke_at.
                stream=events((60.0, "i", b"ls\n"), (1800.0, "i", b"cat secrets\n")),
            ),
            session(
                "covered-then-revoked",
                start=at("10:10"),
                minutes=30,
                stream=events((5.0, "i", b"ls\n"), (900.0, "i", b"select 1;\n")),
            ),
            session("after-the-revoke", start=at("10:30")),
        ]
    )
    rows = access_rows(warehouse)
    assert rows["covered-then-revoked"] == ("jit_grant", "revoked-asker")
    assert rows["after-the-revoke"] == (None, None)
    assert flagged(warehouse, "prod_access_without_approval") == {"after-the-revoke"}
    assert flagged(warehouse, "activity_after_revoke") == {"revoked-asker", "covered-then-revoked"}


def test_of_two_grants_covering_a_session_the_latest_created_is_the_one_hoop_used(
    load: Load,
) -> None:
    warehouse = load(
        [
            session(
                "long-grant",
                start=at("08:55"),
                minutes=5,
                review_=jit_review(approved=at("09:00"), minutes=240, created=at("08:55")),
            ),
            session(
                "short-grant",
                start=at("09:50"),
                minutes=5,
                review_=jit_review(approved=at("10:00"), minutes=30, created=at("09:50")),
            ),
            session("inside-both", start=at("10:10")),
            session("inside-the-long-one-only", start=at("10:45")),
        ]
    )
    rows = access_rows(warehouse)
    assert rows["inside-both"] == ("jit_grant", "short-grant")
    assert rows["inside-the-long-one-only"] == ("jit_grant", "long-grant")


def test_a_jit_review_never_approved_covers_nothing_even_with_a_revoke_at(
    load: Load, flagged: Flagged
) -> None:
    # Created through the API, a JIT review has a revoke_at before anyone approved it.
    pending = review(
        type_="jit",
        status="PENDING",
        created=at("09:55"),
        revoke_at=at("10:55"),
        access_minutes=60,
        groups=[group("sre", status="PENDING", by=None)],
    )
    warehouse = load(
        [
            session(
                "pending-asker",
                start=at("09:55"),
                stream=None,
                exit_code=None,
                status="open",
                minutes=None,
                review_=pending,
            ),
            session("not-covered", start=at("10:20")),
        ]
    )
    assert access_rows(warehouse)["not-covered"] == (None, None)
    assert flagged(warehouse, "prod_access_without_approval") == {"not-covered"}


def test_activity_after_revoke_ignores_one_time_reviews_whose_revoke_at_is_their_approval(
    load: Load, flagged: Flagged
) -> None:
    warehouse = load(
        [
            session(
                "one-time-run-after-approval",
                minutes=60,
                # hoop: revoke_at = approval + access_duration 0 = the approval itself.
                review_=review(status="EXECUTED", created=at("09:58"), revoke_at=at("10:00")),
                stream=events((5.0, "i", b"select 1;\n"), (2400.0, "o", b"1\n")),
            ),
            session(
                "jit-run-past-its-end",
                start=at("09:55"),
                minutes=60,
                review_=jit_review(approved=at("10:00"), minutes=30),
                stream=events((5.0, "i", b"ls\n"), (2400.0, "i", b"cat secrets\n")),
            ),
        ]
    )
    assert flagged(warehouse, "activity_after_revoke") == {"jit-run-past-its-end"}


def test_activity_after_revoke_finds_a_covered_session_that_ran_past_its_grant(
    load: Load, flagged: Flagged
) -> None:
    warehouse = load(
        [
            *grant_of_alice_on_pg_prod(),
            session(
                "covered-ran-past-the-end",
                start=at("10:50"),
                minutes=30,
                # 10:50 + 900 s = 11:05, five minutes past the grant's end at 11:00.
                stream=events((5.0, "i", b"ls\n"), (900.0, "i", b"drop table t;\n")),
            ),
            session(
                "covered-done-in-time",
                start=at("10:20"),
                minutes=30,
                stream=events((5.0, "i", b"ls\n"), (600.0, "o", b"ok\n")),
            ),
            session(
                "other-user-late",
                start=at("10:50"),
                minutes=30,
                user="bob@example.com",
                stream=events((900.0, "i", b"ls\n")),
            ),
        ]
    )
    assert flagged(warehouse, "activity_after_revoke") == {"covered-ran-past-the-end"}
    assert flagged(warehouse, "activity_after_revoke", grace_seconds=600) == set()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        result = run_rule(con, get_rule("activity_after_revoke"))
    (row,) = [dict(zip(result.columns, r, strict=True)) for r in result.rows]
    assert row["review_id"] == rid("grant-asker")
    assert (row["access_via"], name_of(row["grant_session_id"])) == ("jit_grant", "grant-asker")
    assert row["grant_end"] == at("11:00")
    assert row["events_after_revoke"] == 1
    assert row["seconds_past_grant_end"] == 300.0


def test_a_session_ended_when_its_credentials_expired_is_not_a_failed_session(
    load: Load, flagged: Flagged
) -> None:
    warehouse = load(
        [
            session(
                "credentials-expired",
                exit_code=None,
                metadata={"credentials_revoked_at": "2025-03-03T10:05:00Z"},
            ),
            session("exit-1", exit_code=1),
        ]
    )
    assert flagged(warehouse, "failed_prod_session") == {"exit-1"}


def test_a_session_done_with_event_size_zero_but_a_stream_is_a_recording_gap(
    load: Load, flagged: Flagged
) -> None:
    warehouse = load(
        [
            session("cut-by-restart", event_size=0),
            session("done-without-stream", event_size=0, stream=None),
            session(
                "still-open-partial-stream",
                status="open",
                minutes=None,
                exit_code=None,
                event_size=0,
            ),
            session("done-and-sized"),
        ]
    )
    assert flagged(warehouse, "masking_or_recording_gap") == {"cut-by-restart"}
