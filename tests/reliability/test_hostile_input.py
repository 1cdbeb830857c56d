"""A corpus of malformed and hostile gateway responses, served over real HTTP by a hostile gateway.

Each entry scripts one thing wrong with day D (a list page, a list row, a get body, userinfo) while
three good sessions share the day. Whatever the entry, the sync ends (paging always ends, no
request hangs), and one of four things happens, as the entry says:

- the bad record is rejected: a `rejects` row with its stage and reason; the good sessions of the
  day load and the day reconciles (listed = loaded + rejected);
- the hostile value is stored verbatim and harmlessly (SQL and HTML are data, not code);
- the day cannot be read at all: it fails with a clear error and keeps its previous content, and
  the next day, synced in the same run, still loads;
- the token's identity cannot be trusted: the run is refused before anything is read.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import duckdb
import orjson
import pytest

from hoop_sessions.build.schema import ALL_TABLES
from hoop_sessions.config import Secret, Settings
from hoop_sessions.errors import DayFailedError, HoopSessionsError, PartialVisibilityError
from hoop_sessions.extract.transport import Http
from hoop_sessions.sync import run as sync_module
from hoop_sessions.sync.run import sync_days
from tests.records import session_record
from tests.reliability.conftest import content_hash
from tests.reliability.hostile import (
    HostileGateway,
    Reply,
    Request,
    error_reply,
    json_reply,
    list_row,
    page_reply,
    paged,
)

DAY = date(2026, 11, 1)
NEXT = date(2026, 11, 2)
NOW = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


def sid(n: int) -> str:
    return f"0b9f6a3c-1111-4222-8333-{n:012d}"


def record(n: int, day: date = DAY, hour: int = 12, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": sid(n),
        "start_date": f"{day}T{hour:02d}:00:00.25Z",
        "end_date": f"{day}T{hour:02d}:30:00Z",
        "review": None,
    }
    values.update(overrides)
    return session_record(**values)


GOOD = [record(1, hour=3), record(2, hour=9), record(3, hour=15)]
GOOD_IDS = {r["id"] for r in GOOD}
NEXT_DAY = [record(11, NEXT, 4), record(12, NEXT, 13)]
BAD = sid(99)
OTHER = sid(98)
DAY_IDS = {*GOOD_IDS, BAD}
HTML_PAGE = (
    b"<html>\r\n<head><title>200 OK</title></head>\r\n<body><h1>Service is being upgraded</h1>"
    b"<p>Please come back later.</p></body>\r\n</html>\r\n"
)
SQL = "'); DROP TABLE sessions; --"
HTML = "<script>alert(document.cookie)</script>"


# -- what a corpus entry expects ------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    stage: str
    reason: str  # a regular expression the reject's reason matches
    session_id: str | None = BAD
    counted: bool = True  # the session is one of the day's listed (and rejected) sessions


@dataclass(frozen=True)
class Stored:
    check: Callable[[duckdb.DuckDBPyConnection], None]
    loaded: frozenset[str] = frozenset({*GOOD_IDS, BAD})


@dataclass(frozen=True)
class DayFailed:
    reason: str  # a regular expression the day's error matches


@dataclass(frozen=True)
class Refused:
    error: type[Exception]
    message: str


@dataclass(frozen=True)
class Case:
    name: str
    script: Callable[[HostileGateway], None]
    expect: Rejected | Stored | DayFailed | Refused
    bug: str | None = None  # a library bug this entry reveals (the entry is an expected failure)
    bound: float = 30.0  # seconds the sync may take, retries and timeouts included
    timeout: float = 1.0  # the client's timeout (HOOP_TIMEOUT_SECONDS)
    marks: tuple[Any, ...] = ()
    # How the bug shows: a failed check, or an exception escaping the sync (not a slip of the test).
    fails_with: tuple[type[BaseException], ...] = (AssertionError, pytest.fail.Exception)

    def param(self) -> Any:
        xfail = pytest.mark.xfail(strict=True, reason=self.bug, raises=self.fails_with)
        marks = [*self.marks, *([xfail] if self.bug else [])]
        return pytest.param(self, id=self.name, marks=marks)


# -- scripts --------------------------------------------------------------------------------


def serve_bad(
    bad: dict[str, Any], *, body: Reply | None = None, row: Any = None
) -> Callable[[HostileGateway], None]:
    """Day D lists the good sessions and ``bad`` (or ``row``); the get of BAD answers ``body``."""

    def script(gw: HostileGateway) -> None:
        gw.add_day(DAY, [*GOOD, bad])
        if row is not None:
            gw.rows[DAY] = [list_row(r) for r in GOOD] + [row]
        if body is not None:
            gw.bodies[BAD] = body

    return script


def bad_record(**overrides: Any) -> Callable[[HostileGateway], None]:
    return serve_bad(record(99, **overrides))


def bad_body(body: bytes | Reply) -> Callable[[HostileGateway], None]:
    reply = body if isinstance(body, Reply) else Reply(200, body)
    return serve_bad(record(99), body=reply)


def bad_json(
    text_of_record: Callable[[bytes], bytes], **overrides: Any
) -> Callable[[HostileGateway], None]:
    """A get body made by editing the JSON text of a good record (for what JSON cannot say)."""
    return bad_body(text_of_record(orjson.dumps(record(99, **overrides))))


def bad_list_row(row: Any) -> Callable[[HostileGateway], None]:
    return serve_bad(record(99), row=row)


def list_for_day(route: Callable[[Request], Reply]) -> Callable[[HostileGateway], None]:
    def script(gw: HostileGateway) -> None:
        gw.add_day(DAY, [*GOOD, record(99)])
        gw.list_for_day[DAY] = route

    return script


def nested(levels: int) -> bytes:
    """JSON text of objects nested ``levels`` deep (more than any JSON encoder will write)."""
    return b'{"a":' * levels + b'"bottom"' + b"}" * levels


def endless_same_page(request: Request) -> Reply:
    return page_reply([list_row(r) for r in GOOD], has_next_page=True)


ROW = list_row(record(99))


def endless_new_rows(request: Request) -> Reply:
    rows = [{**ROW, "id": sid(1000 + request.offset + i)} for i in range(100)]
    return page_reply(rows, has_next_page=True)


def split_day_with_a_failing_part(gw: HostileGateway) -> None:
    """Too many sessions for one window; of its parts, the first keeps failing and the others are
    slow and have a second page, so they are still at work when the first gives up. The next
    day's list is slower still: what the failed day left running shows up while it is read."""
    gw.add_day(DAY, [*GOOD, record(99)])

    def route(request: Request) -> Reply:
        start, end = (
            datetime.fromisoformat(request.query[k].replace("Z", "+00:00"))
            for k in ("start_date", "end_date")
        )
        if end - start > timedelta(hours=6):
            return always_capped(request)
        if start.hour == 0:
            return error_reply(500, "failed listing sessions")
        if request.offset == 0:
            return Reply(
                200, orjson.dumps({"data": [ROW], "total": 2, "has_next_page": True}), delay=2.0
            )
        return page_reply([], has_next_page=False)

    next_day = paged(gw.rows[NEXT])
    gw.list_for_day[DAY] = route
    gw.list_for_day[NEXT] = lambda request: Reply(**{**vars(next_day(request)), "delay": 3.0})


def always_capped(request: Request) -> Reply:
    return json_reply(
        {
            "data": [list_row(r) for r in GOOD],
            "total": 10_000,
            "total_is_capped": True,
            "has_next_page": True,
        }
    )


def duplicate_ids_across_pages(gw: HostileGateway) -> None:
    gw.add_day(DAY, [*GOOD, record(99)])
    rows = [list_row(r) for r in [*GOOD, record(99)]]
    pages = [[rows[0], rows[1]], [rows[1], rows[2]], [rows[2], rows[0], rows[3]]]

    def route(request: Request) -> Reply:
        index = {0: 0, 2: 1, 4: 2}.get(request.offset)
        if index is None:
            return page_reply([], has_next_page=False)
        return page_reply(pages[index], has_next_page=index < 2)

    gw.list_for_day[DAY] = route


def empty_page_that_says_more(gw: HostileGateway) -> None:
    gw.add_day(DAY, [*GOOD, record(99)])
    rows = [list_row(r) for r in [*GOOD, record(99)]]
    gw.list_for_day[DAY] = lambda request: page_reply(
        rows if request.offset == 0 else [], has_next_page=True
    )


def hostile_userinfo(doc: Any) -> Callable[[HostileGateway], None]:
    def script(gw: HostileGateway) -> None:
        gw.add_day(DAY, GOOD)
        gw.userinfo = lambda request: doc if isinstance(doc, Reply) else json_reply(doc)

    return script


# -- checks of stored values ----------------------------------------------------------------


def value(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql, [BAD]).fetchone()
    assert row is not None, sql
    return row[0]


def sql_stored_verbatim(con: duckdb.DuckDBPyConnection) -> None:
    assert value(con, "SELECT connection FROM sessions WHERE session_id = ?") == SQL
    assert value(con, "SELECT user_name FROM sessions WHERE session_id = ?") == "Robert" + SQL
    assert value(con, "SELECT metadata->>'$.q' FROM sessions WHERE session_id = ?") == SQL
    tags = dict(
        con.execute(
            "SELECT tag_key, tag_value FROM connection_tags WHERE session_id = ?", [BAD]
        ).fetchall()
    )
    assert tags == {"environment": SQL, SQL: "x"}
    payload = value(con, "SELECT payload FROM session_events WHERE session_id = ? AND seq = 0")
    assert payload == SQL.encode()


def html_stored_verbatim(con: duckdb.DuckDBPyConnection) -> None:
    assert value(con, "SELECT user_name FROM sessions WHERE session_id = ?") == HTML
    assert (
        value(con, "SELECT connection FROM sessions WHERE session_id = ?")
        == "<img src=x onerror=alert(1)>"
    )
    assert value(con, "SELECT script FROM sessions WHERE session_id = ?") == "</script>" + HTML
    assert (
        value(con, "SELECT payload_text FROM session_events WHERE session_id = ? AND seq = 0")
        == HTML
    )


def huge_strings_stored(con: duckdb.DuckDBPyConnection) -> None:
    assert value(con, "SELECT length(connection) FROM sessions WHERE session_id = ?") == 5 << 20
    assert (
        value(con, "SELECT length(metadata->>'$.blob') FROM sessions WHERE session_id = ?")
        == 3 << 20
    )
    assert (
        value(con, "SELECT payload_bytes FROM session_events WHERE session_id = ? AND seq = 0")
        == 4 << 20
    )


def control_characters_stored(con: duckdb.DuckDBPyConnection) -> None:
    assert (
        value(con, "SELECT user_name FROM sessions WHERE session_id = ?")
        == "a\x00b\x1b[31mred\u202eevil"
    )
    assert (
        value(con, "SELECT connection FROM sessions WHERE session_id = ?")
        == "\U0001f525 prod \u0645\u0631\u062d\u0628\u0627"
    )


def nulls_stored(con: duckdb.DuckDBPyConnection) -> None:
    row = con.execute(
        "SELECT status, end_date, exit_code, user_email, metrics, stream_status, event_count, review_id "
        "FROM sessions WHERE session_id = ?",
        [BAD],
    ).fetchone()
    assert row == (None, None, None, None, None, "absent", 0, None)
    assert value(con, "SELECT count(*) FROM connection_tags WHERE session_id = ?") == 0


def each_session_once(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        "SELECT session_id, count(*) FROM sessions WHERE start_day = ? GROUP BY 1", [DAY]
    ).fetchall()
    assert sorted(rows) == sorted((s, 1) for s in [*GOOD_IDS, BAD])
    listed = con.execute(
        "SELECT sum(sessions_listed) FROM sync_windows WHERE start_day = ?", [DAY]
    ).fetchone()
    assert listed == (4,)


def unknown_fields_ignored(con: duckdb.DuckDBPyConnection) -> None:
    assert value(con, "SELECT connection FROM sessions WHERE session_id = ?") == "pg-prod"


def warned(field: str, kind: str) -> Callable[[duckdb.DuckDBPyConnection], None]:
    """The bad session loaded, with a record_warnings row naming the field it held badly."""

    def check(con: duckdb.DuckDBPyConnection) -> None:
        rows = con.execute(
            "SELECT field, kind FROM record_warnings WHERE session_id = ? AND start_day = ?",
            [BAD, DAY],
        ).fetchall()
        assert (field, kind) in rows, rows

    return check


def stored_lower_case(con: duckdb.DuckDBPyConnection) -> None:
    assert value(con, "SELECT count(*) FROM sessions WHERE session_id = ?") == 1


def one_event(payload: bytes) -> list[Any]:
    return [[0.5, "o", base64.b64encode(payload).decode()]]


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


REJECTED = [
    Case(
        "get-body-invalid-json",
        bad_body(b'{"id": "%s", "start_date": "2026-11-01T12:00:00Z",}' % BAD.encode()),
        Rejected("flatten", "invalid JSON"),
    ),
    Case(
        "get-body-spread-over-lines-and-invalid",
        bad_body(b'{\n  "id": "%s",\n  "start_date": oops\n}\n' % BAD.encode()),
        Rejected("flatten", "invalid JSON"),
    ),
    Case(
        "get-body-nan-elapsed",
        bad_json(
            lambda t: t.replace(b'"__nan__"', b"NaN"), event_stream=[["__nan__", "o", "aGk="]]
        ),
        Rejected("flatten", "invalid JSON"),
    ),
    Case(
        "get-body-infinity-exit-code",
        bad_json(lambda t: t.replace(b'"exit_code":0', b'"exit_code":-Infinity')),
        Rejected("flatten", "invalid JSON"),
    ),
    Case(
        "get-body-not-utf8",
        bad_json(lambda t: t.replace(b'"Alice"', b'"Al\xffi\xfe\xc3ce"')),
        Rejected("flatten", "invalid JSON.*UTF-8"),
    ),
    Case(
        "get-body-lone-surrogate",
        bad_json(lambda t: t.replace(b'"Alice"', b'"\\ud800"')),
        Rejected("flatten", "invalid JSON.*surrogate"),
    ),
    Case(
        "get-body-nested-10000-levels",
        bad_json(lambda t: t.replace(b'"__deep__"', nested(10_000)), metadata="__deep__"),
        Rejected("flatten", "invalid JSON.*depth"),
    ),
    Case(
        "get-body-html-error-page-with-200",
        bad_body(Reply(200, HTML_PAGE, "text/html")),
        Rejected("get", "body that is not JSON"),
    ),
    Case("get-body-empty-with-200", bad_body(b""), Rejected("get", "body that is not JSON")),
    Case(
        "get-body-cut-short-every-time",
        bad_body(half(orjson.dumps(record(99)))),
        Rejected("get", "body that is not JSON"),
    ),
    Case(
        "get-404-after-list",
        bad_body(error_reply(404, "not found")),
        Rejected("get", "not found when read"),
    ),
    Case(
        "get-403-after-list",
        bad_body(error_reply(403, "user is not allowed to access this session")),
        Rejected("get", "may not read it"),
    ),
    Case(
        "get-answers-another-sessions-id",
        bad_body(json_reply(record(98))),
        Rejected("flatten", f"asked for session {BAD}, the gateway answered with '{OTHER}'"),
    ),
    Case(
        "get-answers-a-session-of-another-day",
        bad_body(json_reply(record(99, day=date(2026, 11, 5)))),
        Rejected("flatten", "not on day 2026-11-01"),
    ),
    Case(
        "get-body-is-a-json-list",
        bad_body(b"[1, 2, 3]"),
        Rejected("flatten", "record is a JSON list"),
    ),
    Case(
        "start-date-is-null-in-the-get",
        serve_bad(record(99), body=json_reply(record(99, start_date=None))),
        Rejected("flatten", "start_date is NoneType"),
    ),
    Case(
        "event-of-two-elements",
        bad_record(event_stream=[[0.5, "o"]]),
        Rejected("flatten", "not a \\[elapsed, type, data\\] triple"),
    ),
    Case(
        "event-payload-invalid-base64",
        bad_record(event_stream=[[0.5, "o", "!!not base64!!"]]),
        Rejected("flatten", "not valid base64"),
    ),
    Case(
        "event-payload-is-a-number",
        bad_record(event_stream=[[0.5, "o", 12345]]),
        Rejected("flatten", "payload is not a base64 string"),
    ),
    Case(
        "event-elapsed-negative",
        bad_record(event_stream=[[-3.5, "o", "aGk="]]),
        Rejected("flatten", "invalid elapsed time -3.5"),
    ),
    Case(
        "event-elapsed-is-a-string",
        bad_record(event_stream=[["0.5", "o", "aGk="]]),
        Rejected("flatten", "non-numeric elapsed"),
    ),
    Case(
        "event-elapsed-1e300",
        bad_record(event_stream=[[1e300, "o", "aGk="]]),
        Rejected("flatten", "elapsed"),
    ),
    Case(
        "event-stream-is-an-object",
        bad_record(event_stream={"0": [0.5, "o", "aGk="]}),
        Rejected("flatten", "event_stream is a dict"),
    ),
    Case(
        "list-row-without-id",
        bad_list_row({k: v for k, v in list_row(record(99)).items() if k != "id"}),
        Rejected("list", "missing or malformed id", None, counted=False),
    ),
    Case(
        "list-row-id-is-a-path",
        bad_list_row({**list_row(record(99)), "id": "../userinfo"}),
        Rejected("list", "missing or malformed id", None, counted=False),
    ),
    Case(
        "list-row-is-not-an-object",
        bad_list_row(42),
        Rejected("list", "missing or malformed id", None, counted=False),
    ),
    Case(
        "list-row-outside-the-window",
        bad_list_row(list_row(record(99, day=date(2026, 11, 5)))),
        Rejected("list", "outside the window", counted=False),
    ),
    Case(
        "list-row-start-date-not-a-time",
        bad_list_row({**list_row(record(99)), "start_date": "yesterday"}),
        Rejected("list", "'yesterday' is not an RFC3339 time"),
    ),
]


STORED = [
    Case("status-is-a-number", bad_record(status=5), Stored(warned("status", "malformed"))),
    Case(
        "exit-code-is-a-boolean",
        bad_record(exit_code=True),
        Stored(warned("exit_code", "malformed")),
    ),
    Case(
        "exit-code-is-a-string", bad_record(exit_code="0"), Stored(warned("exit_code", "malformed"))
    ),
    Case(
        "exit-code-beyond-64-bits",
        bad_json(lambda t: t.replace(b'"exit_code":0', b'"exit_code":99999999999999999999999')),
        Stored(warned("exit_code", "malformed")),
    ),
    Case(
        "connection-tags-is-a-string",
        bad_record(connection_tags="prod"),
        Stored(warned("connection_tags", "malformed")),
    ),
    Case(
        "metadata-is-a-list", bad_record(metadata=[1, 2]), Stored(warned("metadata", "malformed"))
    ),
    Case(
        "review-is-a-list", bad_record(review=["APPROVED"]), Stored(warned("review", "malformed"))
    ),
    Case(
        "review-without-id",
        bad_record(review={"id": None, "status": "APPROVED"}),
        Stored(warned("review.id", "malformed")),
    ),
    Case(
        "review-groups-are-strings",
        bad_record(review={"id": OTHER, "review_groups_data": ["sre"]}),
        Stored(warned("review.review_groups_data[0]", "malformed")),
    ),
    Case(
        "time-window-out-of-range",
        bad_record(
            review={
                "id": OTHER,
                "time_window": {"type": "time_range", "configuration": {"start_time": "25:99"}},
            }
        ),
        Stored(warned("review.time_window.configuration.start_time", "malformed")),
    ),
    Case(
        "event-of-unknown-kind",
        bad_record(event_stream=[[0.5, "x", "aGk="]]),
        Stored(warned("event_stream.type", "unknown_value")),
    ),
    Case(
        "sql-in-names-tags-metadata-and-events",
        bad_record(
            connection=SQL,
            user_name="Robert" + SQL,
            metadata={"q": SQL},
            connection_tags={"environment": SQL, SQL: "x"},
            event_stream=[[0.5, "i", base64.b64encode(SQL.encode()).decode()]],
        ),
        Stored(sql_stored_verbatim),
    ),
    Case(
        "html-and-script-in-names-input-and-events",
        bad_record(
            user_name=HTML,
            connection="<img src=x onerror=alert(1)>",
            script={"data": "</script>" + HTML},
            event_stream=one_event(HTML.encode()),
        ),
        Stored(html_stored_verbatim),
    ),
    Case(
        "strings-of-several-mib",
        bad_record(
            connection="c" * (5 << 20),
            metadata={"blob": "m" * (3 << 20)},
            event_stream=one_event(b"\x00" * (4 << 20)),
        ),
        Stored(huge_strings_stored),
    ),
    Case(
        "nul-control-bidi-and-emoji-characters",
        bad_record(
            user_name="a\x00b\x1b[31mred\u202eevil",
            connection="\U0001f525 prod \u0645\u0631\u062d\u0628\u0627",
        ),
        Stored(control_characters_stored),
    ),
    Case(
        "nulls-where-values-are-usual",
        bad_record(
            status=None,
            end_date=None,
            exit_code=None,
            user=None,
            metrics=None,
            event_stream=None,
            connection_tags=None,
            labels=None,
            metadata=None,
            integrations_metadata=None,
        ),
        Stored(nulls_stored),
    ),
    Case("duplicate-ids-across-pages", duplicate_ids_across_pages, Stored(each_session_once)),
    Case(
        "empty-page-that-says-has-next-page", empty_page_that_says_more, Stored(each_session_once)
    ),
    Case(
        "unknown-fields-of-a-newer-gateway",
        bad_record(new_field={"x": "y" * 100_000}, another=[1, 2]),
        Stored(unknown_fields_ignored),
    ),
    Case(
        "pretty-printed-get-body",
        bad_body(orjson.dumps(record(99), option=orjson.OPT_INDENT_2)),
        Stored(unknown_fields_ignored),
    ),
    Case(
        "upper-case-id",
        serve_bad(
            record(99),
            row={**list_row(record(99)), "id": BAD.upper()},
            body=json_reply(record(99, id=BAD.upper())),
        ),
        Stored(stored_lower_case),
    ),
]


DAY_FAILED = [
    Case(
        "list-page-html-with-200-every-time",
        list_for_day(lambda r: Reply(200, HTML_PAGE, "text/html")),
        DayFailed("kept failing after 2 attempts .*unreadable JSON body"),
    ),
    Case(
        "list-page-with-nan-every-time",
        list_for_day(lambda r: Reply(200, b'{"data": [], "total": NaN, "has_next_page": false}')),
        DayFailed("kept failing .*unreadable JSON body"),
    ),
    Case(
        "list-page-nested-10000-levels",
        list_for_day(
            lambda r: Reply(200, b'{"data": [' + nested(10_000) + b'], "has_next_page": false}')
        ),
        DayFailed("kept failing .*unreadable JSON body"),
    ),
    Case(
        "list-data-is-not-a-list",
        list_for_day(lambda r: json_reply({"data": {"rows": []}, "has_next_page": False})),
        DayFailed("list response has no 'data' list"),
    ),
    Case(
        "list-body-is-null",
        list_for_day(lambda r: Reply(200, b"null")),
        DayFailed("list response has no 'data' list"),
    ),
    Case(
        "has-next-page-for-ever-on-the-same-rows",
        list_for_day(endless_same_page),
        DayFailed("repeated rows"),
    ),
    Case(
        "has-next-page-for-ever-with-new-rows",
        list_for_day(endless_new_rows),
        DayFailed("instead of paging for ever|past hoop's cap"),
    ),
    Case(
        "one-part-of-a-split-day-keeps-failing",
        split_day_with_a_failing_part,
        DayFailed("kept failing"),
        timeout=5.0,
    ),
    Case(
        "total-capped-at-every-window-size",
        list_for_day(always_capped),
        DayFailed("within the one second"),
        bound=60.0,
        marks=(pytest.mark.reliability,),
    ),
    Case(
        "list-slower-than-the-timeout-every-time",
        list_for_day(lambda r: Reply(delay=3.0, body=b"{}")),
        DayFailed("timed out"),
    ),
    Case(
        "list-connection-dropped-every-time",
        list_for_day(lambda r: Reply(drop=True)),
        DayFailed("connection failed"),
    ),
]


# A session whose get keeps failing: it is recorded (ledger, rejects, the run's incomplete items)
# and the rest of its day loads; the next run tries it again.
SESSION_FAILED = [
    Case(
        "get-500-for-one-session-every-time",
        bad_body(error_reply(500, "failed parsing blob stream")),
        DayFailed(f"sessions/{BAD} kept failing .*HTTP 500 failed parsing blob stream"),
    ),
    Case(
        "get-redirects-elsewhere",
        bad_body(Reply(302, b"", headers={"Location": "http://127.0.0.1:9/steal"})),
        DayFailed("hoop answered 302"),
    ),
    Case(
        "get-body-dribbled-slower-than-the-timeout",
        bad_body(Reply(200, orjson.dumps(record(99)), dribble=0.2)),
        DayFailed(r"timed out \(deadline: \d+ bytes after"),
        bound=6.0,
    ),
]


REFUSED = [
    Case(
        "userinfo-is-admin-as-the-string-false",
        hostile_userinfo(
            {"id": "u", "email": "rita@hostile.example", "groups": ["sre"], "is_admin": "false"}
        ),
        Refused(PartialVisibilityError, "neither 'admin' nor 'auditor'"),
    ),
    Case(
        "userinfo-groups-is-a-string",
        hostile_userinfo({"id": "u", "email": "e@x", "groups": "admin"}),
        Refused(PartialVisibilityError, "neither 'admin' nor 'auditor'"),
    ),
    Case(
        "userinfo-is-a-json-list",
        hostile_userinfo([{"groups": ["admin"]}]),
        Refused(HoopSessionsError, "expected a JSON object"),
    ),
    Case(
        "userinfo-html-with-200",
        hostile_userinfo(Reply(200, HTML_PAGE, "text/html")),
        Refused(HoopSessionsError, "/api/userinfo"),
    ),
]


def settings_for(gw: HostileGateway, data_dir: Path, timeout: float = 1.0) -> Settings:
    return Settings(
        api_url=gw.url,
        api_token=Secret(gw.token),
        data_dir=data_dir,
        retry_attempts=2,
        retry_max_seconds=10.0,
        timeout_seconds=timeout,
        lock_timeout_seconds=30.0,
        # DAY is 19 days before NOW: within the rolling window it is listed again when re-read,
        # so the scripted list responses are asked for.
        rolling_days=30,
    )


def sync_bounded(gw: HostileGateway, settings: Settings, bound: float, days: list[date]) -> Any:
    """Sync ``days`` in a thread; fail if it has not ended within ``bound`` seconds."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = sync_days(settings, days, now=NOW)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(bound)
    if thread.is_alive():
        gw.stopping.set()  # the gateway now refuses everything, so the sync ends before the test
        thread.join(60)
        pytest.fail(f"the sync was still running after {bound:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def warehouse(data_dir: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)


def assert_tables_intact(con: duckdb.DuckDBPyConnection) -> None:
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert {t.name for t in ALL_TABLES} - {"compliance_findings"} <= tables


def assert_next_day_loaded(con: duckdb.DuckDBPyConnection) -> None:
    loaded = {
        r[0]
        for r in con.execute(
            "SELECT session_id FROM sessions WHERE start_day = ?", [NEXT]
        ).fetchall()
    }
    assert loaded == {r["id"] for r in NEXT_DAY}
    reconciled = dict(
        con.execute("SELECT start_day, reconciled FROM day_reconciliation").fetchall()
    )
    assert reconciled.get(NEXT) is True


@pytest.mark.parametrize("case", [c.param() for c in REJECTED])
def test_a_bad_record_is_rejected_with_its_reason_and_the_rest_of_its_day_loads(
    case, hostile, tmp_path
):
    case.script(hostile)
    result = sync_bounded(hostile, settings_for(hostile, tmp_path), case.bound, [DAY])
    # The day loads; a session that could not be read is also reported as incomplete (exit 1).
    assert not result.failed, result.failed
    assert set(result.incomplete) <= {DAY}
    expect = case.expect
    with warehouse(tmp_path) as con:
        assert_tables_intact(con)
        loaded = {
            r[0]
            for r in con.execute(
                "SELECT session_id FROM sessions WHERE start_day = ?", [DAY]
            ).fetchall()
        }
        assert loaded == GOOD_IDS
        rejects = con.execute(
            "SELECT session_id, stage, reason, length(payload) FROM rejects WHERE start_day = ? AND stage <> 'stream'",
            [DAY],
        ).fetchall()
        listed, rejected, reconciled = con.execute(
            "SELECT sessions_listed, sessions_rejected, reconciled FROM day_reconciliation WHERE start_day = ?",
            [DAY],
        ).fetchone()
    matching = [
        r
        for r in rejects
        if r[0] == expect.session_id and r[1] == expect.stage and re.search(expect.reason, r[2])
    ]
    assert matching, (
        f"no {expect.stage} reject matching {expect.reason!r} for {expect.session_id}: {rejects}"
    )
    assert all(size is None or size <= 4100 for *_, size in rejects), (
        "a reject's payload was not truncated"
    )
    assert reconciled
    assert listed == len(GOOD) + expect.counted
    assert rejected == int(expect.counted)
    # Only session ids, never paths made of what the gateway sent, were asked for.
    gets = [p for p in hostile.paths() if p.startswith("/api/sessions/")]
    assert all(re.fullmatch(r"/api/sessions/[0-9a-f-]{36}", p) for p in gets), gets


@pytest.mark.parametrize("case", [c.param() for c in STORED])
def test_a_hostile_value_is_stored_verbatim_and_harmlessly(case, hostile, tmp_path):
    case.script(hostile)
    result = sync_bounded(hostile, settings_for(hostile, tmp_path), case.bound, [DAY])
    assert result.ok, result.failed
    with warehouse(tmp_path) as con:
        assert_tables_intact(con)
        loaded = {
            r[0]
            for r in con.execute(
                "SELECT session_id FROM sessions WHERE start_day = ?", [DAY]
            ).fetchall()
        }
        assert loaded == case.expect.loaded
        reconciled = con.execute(
            "SELECT reconciled FROM day_reconciliation WHERE start_day = ?", [DAY]
        ).fetchone()
        assert reconciled == (True,)
        case.expect.check(con)


FAILED = "<the day failed>"


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, date | None]]:
    """(path, start_date day) of every request in the order the client sent it, and
    (FAILED, day) at the moment the sync gave a day up.

    The gateway's own record is in the order its threads parsed the requests: one connection's
    thread can parse a request the client wrote before it moved on only after another
    connection's later request, so it cannot tell what the client did first.
    """
    order: list[tuple[str, date | None]] = []
    exchange = Http._exchange
    extract = sync_module._extract

    async def spy(self: Http, lane: Any, request: Any) -> Any:
        path, _, query = request.url.target.decode("ascii").partition("?")
        start = parse_qs(query).get("start_date", [None])[0]
        order.append((path, date.fromisoformat(start[:10]) if start else None))
        return await exchange(self, lane, request)

    async def extract_spy(settings: Settings, day: date, **kwargs: Any) -> Any:
        try:
            return await extract(settings, day, **kwargs)
        except DayFailedError:
            order.append((FAILED, day))
            raise

    monkeypatch.setattr(Http, "_exchange", spy)
    monkeypatch.setattr(sync_module, "_extract", extract_spy)
    return order


@pytest.mark.parametrize("case", [c.param() for c in DAY_FAILED])
def test_a_response_that_makes_the_day_unreadable_fails_it_clearly_and_keeps_its_old_rows(
    case, hostile, tmp_path, sent
):
    hostile.add_day(NEXT, NEXT_DAY)
    hostile.add_day(DAY, GOOD)
    settings = settings_for(hostile, tmp_path, case.timeout)
    assert sync_days(settings, [DAY], now=NOW).ok
    before = content_hash(tmp_path / "warehouse.duckdb", day=DAY)

    case.script(hostile)
    sent.clear()
    result = sync_bounded(hostile, settings, case.bound, [DAY, NEXT])

    assert list(result.failed) == [DAY], result.failed
    assert re.search(case.expect.reason, result.failed[DAY]), result.failed[DAY]
    # Nothing of the failed day was left running once the sync gave it up (the next day, read
    # at the same time, goes on).
    assert any(day == DAY for _, day in sent) and any(day == NEXT for _, day in sent), sent[:5]
    failed_at = sent.index((FAILED, DAY))
    late = [
        p
        for p, day in sent[failed_at + 1 :]
        if day == DAY or p.removeprefix("/api/sessions/") in DAY_IDS
    ]
    assert late == [], f"{len(late)} request(s) for the failed day sent after it failed: {late[:3]}"
    assert [d.day for d in result.days] == [NEXT]
    assert content_hash(tmp_path / "warehouse.duckdb", day=DAY) == before
    with warehouse(tmp_path) as con:
        assert_tables_intact(con)
        assert_next_day_loaded(con)


@pytest.mark.parametrize("case", [c.param() for c in REFUSED])
def test_a_userinfo_that_cannot_be_trusted_refuses_the_run_before_reading_anything(
    case, hostile, tmp_path
):
    case.script(hostile)
    with pytest.raises(case.expect.error) as info:
        sync_bounded(hostile, settings_for(hostile, tmp_path), case.bound, [DAY])
    assert case.expect.message in str(info.value)
    assert "/api/sessions" not in hostile.paths()
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_the_corpus_holds_at_least_thirty_distinct_hostile_responses():
    names = [c.name for c in (*REJECTED, *STORED, *DAY_FAILED, *REFUSED)]
    assert len(names) == len(set(names)) >= 30


@pytest.mark.parametrize("case", [c.param() for c in SESSION_FAILED])
def test_a_session_that_cannot_be_read_is_reported_and_the_rest_of_its_day_loads(
    case, hostile, tmp_path
):
    hostile.add_day(NEXT, NEXT_DAY)
    case.script(hostile)
    result = sync_bounded(
        hostile, settings_for(hostile, tmp_path, case.timeout), case.bound, [DAY, NEXT]
    )
    assert not result.failed, result.failed
    assert list(result.incomplete) == [DAY]
    [item] = result.incomplete[DAY]
    assert BAD in item and re.search(case.expect.reason, item), item
    assert not result.ok
    with warehouse(tmp_path) as con:
        loaded = {
            r[0]
            for r in con.execute(
                "SELECT session_id FROM sessions WHERE start_day = ?", [DAY]
            ).fetchall()
        }
        assert loaded == GOOD_IDS
        rejects = con.execute(
            "SELECT session_id, stage FROM rejects WHERE start_day = ? AND stage <> 'stream'", [DAY]
        ).fetchall()
        assert rejects == [(BAD, "get")]
        assert con.execute(
            "SELECT reconciled FROM day_reconciliation WHERE start_day = ?", [DAY]
        ).fetchone() == (True,)
        assert_next_day_loaded(con)
