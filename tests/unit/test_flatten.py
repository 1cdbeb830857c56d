from datetime import UTC, date, datetime, time

import pyarrow as pa
import pytest

from hoop_sessions.build import schema
from hoop_sessions.build.flatten import DayBuilder
from hoop_sessions.extract.finality import is_final
from hoop_sessions.extract.values import RecordRejected, parse_time
from tests.records import DROP, GID, RID, SID, b64, session_record

DAY = date(2026, 11, 1)
SYNCED = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)


def build(*records):
    builder = DayBuilder(DAY)
    errors = []
    for r in records:
        try:
            builder.add_session(r, synced_at=SYNCED)
        except RecordRejected as exc:
            errors.append(exc)
    return builder.tables(), errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01T10:00:00.3176Z", datetime(2026, 11, 1, 10, 0, 0, 317600, tzinfo=UTC)),
        ("2026-11-01T10:00:00Z", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01T10:00:01.5Z", datetime(2026, 11, 1, 10, 0, 1, 500000, tzinfo=UTC)),
        ("2026-11-01T10:00:00.123456789Z", datetime(2026, 11, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-01T12:00:00+02:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),
    ],
)
def test_hoop_times_parse_to_utc_microseconds(text, expected):
    assert parse_time(text, "t") == expected


@pytest.mark.parametrize(
    "text", ["2026-11-01", "2026-11-01 10:00:00Z", "yesterday", "2026-13-01T00:00:00Z", 5, None]
)
def test_anything_but_rfc3339_is_not_a_time(text):
    with pytest.raises(RecordRejected):
        parse_time(text, "t")


def test_every_session_column_gets_its_exact_value():
    tables, errors = build(session_record())
    assert errors == []
    row = tables["sessions"].to_pylist()[0]
    assert row == {
        "session_id": SID,
        "org_id": "0cd7f941-2bb8-4f9f-93b0-11620d4652ab",
        "start_date": datetime(2026, 11, 1, 10, 0, 0, 317600, tzinfo=UTC),
        "end_date": datetime(2026, 11, 1, 10, 5, 0, 1, tzinfo=UTC),
        "start_day": DAY,
        "duration_seconds": pytest.approx(299.682401),
        "status": "done",
        "verb": "exec",
        "type": "database",
        "connection_subtype": "postgres",
        "recording_format": None,
        "connection": "pg-prod",
        "role_name": "pg-prod",
        "resource_name": "pg-main",
        "user_email": "alice@example.com",
        "user_id": "nJ1xV3ASWGTi7L8Y6zvnKqxNlnZM2TxV1bRdc0706vZ",
        "user_name": "Alice",
        "identity_type": "user",
        "machine_identity_id": None,
        "exit_code": 0,
        "event_size": 120,
        "script_size": 10,
        "script": "SELECT 1;",
        "session_batch_id": "batch-1",
        "correlation_id": "task-9",
        "jira_issue_key": "OPS-1",
        "labels": None,
        "metadata": '{"nested":{"a":[1,2]},"ticket":"OPS-1"}',
        "metrics": '{"data_masking":{"err_count":1,"info_types":{"EMAIL":4},"total_redact_count":4},"truncated":false}',
        "integrations_metadata": '{"jira_issue_key":"OPS-1"}',
        "ai_analysis": '{"risk_level":"low","title":"ok"}',
        "guardrails_info": '[{"direction":"input","matched_words":["drop"],"rule_name":"deny"}]',
        "redacted_count": 4,
        "masking_error_count": 1,
        "stream_truncated": False,
        "review_id": RID,
        "review_status": "APPROVED",
        "event_count": 3,
        "stream_status": "ok",
        "is_final": True,
        "synced_at": SYNCED,
    }


def test_review_and_group_columns_convert_nanoseconds_milliseconds_and_time_windows():
    tables, _ = build(session_record())
    assert tables["reviews"].to_pylist() == [
        {
            "review_id": RID,
            "session_id": SID,
            "start_day": DAY,
            "type": "jit",
            "status": "APPROVED",
            "access_duration_seconds": 1800.0,
            "created_at": datetime(2026, 11, 1, 9, 59, 0, 120000, tzinfo=UTC),
            "revoke_at": datetime(2026, 11, 1, 10, 30, 0, 500000, tzinfo=UTC),
            "time_window_start": time(9, 0),
            "time_window_end": time(18, 0),
            "access_request_rule_name": "prod-rule",
            "min_approvals": 1,
            "force_approval_groups": ["sre"],
            "rejection_reason": None,
        }
    ]
    assert tables["review_groups"].to_pylist() == [
        {
            "review_group_id": GID,
            "review_id": RID,
            "session_id": SID,
            "start_day": DAY,
            "group_name": "sre",
            "status": "APPROVED",
            "forced_review": False,
            "reviewer_id": "u-2",
            "reviewer_email": "bob@example.com",
            "reviewer_name": "Bob",
            "reviewer_slack_id": "U1",
            "reviewed_at": datetime(2026, 11, 1, 10, 0, 0, 200000, tzinfo=UTC),
        }
    ]


def test_tags_become_one_row_per_key():
    tables, _ = build(session_record())
    assert tables["connection_tags"].to_pylist() == [
        {"session_id": SID, "start_day": DAY, "tag_key": "environment", "tag_value": "prod"},
        {"session_id": SID, "start_day": DAY, "tag_key": "team", "tag_value": "payments"},
    ]


def test_events_keep_exact_bytes_and_times_from_the_session_start():
    tables, _ = build(session_record())
    events = tables["session_events"].to_pylist()
    assert [e["seq"] for e in events] == [0, 1, 2]
    assert [e["payload"] for e in events] == [b"SELECT 1;\n", b"\x1b[1m1\x1b[0m\xff", b""]
    assert events[1]["payload_text"] == "\x1b[1m1\x1b[0m\ufffd"
    assert [e["payload_bytes"] for e in events] == [10, 10, 0]
    assert events[0]["event_time"] == datetime(2026, 11, 1, 10, 0, 0, 817600, tzinfo=UTC)
    assert [e["event_type"] for e in events] == ["i", "o", "e"]


def test_null_and_absent_keys_become_nulls():
    record = session_record(
        end_date=None,
        exit_code=None,
        session_batch_id=DROP,
        correlation_id=DROP,
        review=None,
        connection_tags=None,
        metrics=None,
        integrations_metadata=None,
        event_stream=DROP,
        script=None,
        status="open",
        metadata=None,
    )
    tables, errors = build(record)
    assert errors == []
    row = tables["sessions"].to_pylist()[0]
    for column in (
        "end_date",
        "duration_seconds",
        "exit_code",
        "session_batch_id",
        "correlation_id",
        "review_id",
        "review_status",
        "metrics",
        "jira_issue_key",
        "redacted_count",
        "stream_truncated",
        "script",
        "metadata",
    ):
        assert row[column] is None, column
    assert row["stream_status"] == "absent"
    assert row["event_count"] == 0
    assert row["is_final"] is False
    assert tables["reviews"].num_rows == tables["connection_tags"].num_rows == 0


def test_tables_match_the_contract_schema_exactly():
    tables, _ = build(session_record())
    for table in schema.DAY_TABLES:
        assert tables[table.name].schema.equals(table.schema), table.name


END = "2026-11-09T10:00:00Z"
LONG_AGO = "2026-11-08T02:59:59Z"  # 48 h and a second before SYNCED


@pytest.mark.parametrize(
    ("status", "end_date", "review", "final"),
    [
        ("done", END, None, True),
        ("done", None, None, False),  # a revoked review sets done without closing the stream
        ("open", None, None, False),
        ("ready", None, {"status": "APPROVED", "type": "onetime"}, False),
        # An APPROVED or REVOKED JIT session with no end_date can still be connected: final only
        # once the longest access (48 h) has passed since revoke_at.
        (
            "ready",
            None,
            {"status": "APPROVED", "type": "jit", "revoke_at": "2026-11-10T02:59:59Z"},
            False,
        ),
        (
            "done",
            None,
            {"status": "REVOKED", "type": "jit", "revoke_at": "2026-11-10T02:59:59Z"},
            False,
        ),
        ("done", None, {"status": "REVOKED", "type": "jit", "revoke_at": LONG_AGO}, True),
        ("open", None, {"status": "APPROVED", "type": "jit", "revoke_at": LONG_AGO}, True),
        (
            "open",
            None,
            {"status": "APPROVED", "type": "jit", "revoke_at": "2026-11-08T03:00:01Z"},
            False,
        ),
        ("done", None, {"status": "REVOKED", "type": "jit"}, False),  # no revoke_at: cannot tell
        ("open", None, {"status": "REJECTED", "type": "onetime"}, True),  # never ran
        ("open", None, {"status": "EXPIRED", "type": "jit"}, True),  # never ran (newer gateways)
        ("done", None, {"status": "PENDING", "type": "onetime"}, False),
        ("done", END, {"status": "REJECTED", "type": "onetime"}, True),
        ("done", END, {"status": "EXECUTED", "type": "onetime"}, True),
        ("ready", None, {"status": "EXECUTED", "type": "onetime"}, False),
        (
            "done",
            END,
            {"status": "APPROVED", "type": "jit", "revoke_at": "2026-11-10T03:00:01Z"},
            True,
        ),
        ("done", None, {"status": "APPROVED", "type": "onetime"}, False),
    ],
)
def test_finality_follows_the_contract(status, end_date, review, final):
    assert is_final({"status": status, "end_date": end_date, "review": review}, SYNCED) is final


def test_a_session_whose_sidecar_was_reaped_is_never_final():
    record = {"status": "done", "end_date": END, "metadata": {"sidecar": {"reaped_at": END}}}
    assert is_final(record, SYNCED) is False
    assert is_final({**record, "metadata": {"sidecar": {}}}, SYNCED) is True


UNREADABLE = {
    "not an object": ["a list"],
    "missing id": session_record(id=DROP),
    "non-uuid id": session_record(id="123"),
    "numeric id": session_record(id=42),
    "missing start_date": session_record(start_date=DROP),
    "unparsable start_date": session_record(start_date="11/01/2026 10:00"),
    "start_date on another day": session_record(start_date="2026-11-02T00:00:00Z"),
    "invalid base64": session_record(event_stream=[[0.1, "o", "%%%"]]),
    "event of wrong length": session_record(event_stream=[[0.1, "o"]]),
    "event type not a string": session_record(event_stream=[[0.1, 7, b64(b"a")]]),
    "negative elapsed": session_record(event_stream=[[-0.1, "o", b64(b"a")]]),
    "stream as object": session_record(event_stream={"o": "a"}),
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_an_unreadable_record_is_rejected_with_a_reason_and_appends_nothing(kind):
    good = session_record(id="1b9f6a3c-1111-4222-8333-444455556666")
    tables, errors = build(UNREADABLE[kind], good)
    assert len(errors) == 1
    assert errors[0].reason
    # The good session of the day still loads, and nothing of the bad one does.
    for name in (
        "sessions",
        "reviews",
        "review_groups",
        "connection_tags",
        "session_events",
        "record_warnings",
    ):
        ids = set(tables[name].column("session_id").to_pylist())
        assert ids <= {"1b9f6a3c-1111-4222-8333-444455556666"}, name
    assert tables["sessions"].num_rows == 1


# A malformed sub-field: (record, the field named in record_warnings, table and column left null).
MALFORMED_FIELDS = {
    "unparsable end_date": (session_record(end_date="soon"), "end_date", ("sessions", "end_date")),
    "exit_code as text": (session_record(exit_code="0"), "exit_code", ("sessions", "exit_code")),
    "event_size as float": (
        session_record(event_size=1.5),
        "event_size",
        ("sessions", "event_size"),
    ),
    "user as number": (session_record(user=7), "user", ("sessions", "user_email")),
    "metadata as list": (session_record(metadata=[1]), "metadata", ("sessions", "metadata")),
    "huge exit code": (session_record(exit_code=2**70), "exit_code", ("sessions", "exit_code")),
    "script as string": (session_record(script="SELECT 1"), "script", ("sessions", "script")),
    "metric of the wrong type": (
        session_record(metrics={"truncated": "no", "data_masking": {"total_redact_count": "4"}}),
        "metrics.truncated",
        ("sessions", "stream_truncated"),
    ),
    "review as string": (session_record(review="APPROVED"), "review", ("sessions", "review_id")),
    "review without id": (
        session_record(review={"status": "APPROVED"}),
        "review.id",
        ("sessions", "review_id"),
    ),
    "duration as text": (
        session_record(review={"id": RID, "access_duration": "30m"}),
        "review.access_duration",
        ("reviews", "access_duration_seconds"),
    ),
    "time window garbage": (
        session_record(review={"id": RID, "time_window": {"configuration": {"start_time": "9am"}}}),
        "review.time_window.configuration.start_time",
        ("reviews", "time_window_start"),
    ),
    "time window without configuration": (
        session_record(review={"id": RID, "time_window": "09:00-18:00"}),
        "review.time_window",
        ("reviews", "time_window_end"),
    ),
    "revoke_at not a time": (
        session_record(review={"id": RID, "revoke_at": "tomorrow"}),
        "review.revoke_at",
        ("reviews", "revoke_at"),
    ),
    "created_at a number": (
        session_record(review={"id": RID, "created_at": 1700000000}),
        "review.created_at",
        ("reviews", "created_at"),
    ),
    "review_date not a time": (
        session_record(
            review={"id": RID, "review_groups_data": [{"id": GID, "review_date": "now"}]}
        ),
        "review.review_groups_data[0].review_date",
        ("review_groups", "reviewed_at"),
    ),
    "forced_review as string": (
        session_record(
            review={"id": RID, "review_groups_data": [{"id": GID, "forced_review": "yes"}]}
        ),
        "review.review_groups_data[0].forced_review",
        ("review_groups", "forced_review"),
    ),
    "groups not a list": (
        session_record(review={"id": RID, "review_groups_data": {"a": 1}}),
        "review.review_groups_data",
        ("review_groups", "review_group_id"),
    ),
    "group without id": (
        session_record(review={"id": RID, "review_groups_data": [{"group": "sre"}]}),
        "review.review_groups_data[0].id",
        ("review_groups", "review_group_id"),
    ),
    "tags as string": (
        session_record(connection_tags="team=banking;environment:prod"),
        "connection_tags",
        ("connection_tags", "tag_key"),
    ),
    "tag value as number": (
        session_record(connection_tags={"env": 1}),
        "connection_tags.env",
        ("connection_tags", "tag_value"),
    ),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED_FIELDS))
def test_a_malformed_sub_field_is_nulled_and_warned_about_and_the_session_loads(kind):
    record, field, (table, column) = MALFORMED_FIELDS[kind]
    builder = DayBuilder(DAY)
    builder.add_session(record, synced_at=SYNCED)
    tables = builder.tables()
    assert tables["sessions"].column("session_id").to_pylist() == [SID]
    assert tables["session_events"].num_rows == 3
    assert all(v is None for v in tables[table].column(column).to_pylist()), (table, column)
    warnings = tables["record_warnings"].to_pylist()
    named = [w for w in warnings if w["field"] == field]
    assert len(named) == 1, warnings
    assert named[0]["session_id"] == SID
    assert named[0]["kind"] == "malformed"
    assert named[0]["detail"]
    assert named[0]["seen_at"] == SYNCED
    assert builder.warning_counts[f"malformed {field}"] == 1


def test_a_malformed_revoke_at_leaves_an_approved_jit_session_to_be_read_again():
    # Still connected (no end_date): only revoke_at could tell when its access ends.
    review = {"id": RID, "type": "jit", "status": "APPROVED", "revoke_at": "tomorrow"}
    tables, errors = build(session_record(review=review, status="open", end_date=None))
    assert errors == []
    assert tables["sessions"].column("is_final").to_pylist() == [False]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("9:00", time(9, 0)), ("09:00", time(9, 0)), ("0:05", time(0, 5)), ("23:59", time(23, 59))],
)
def test_a_time_window_hoop_accepts_loads_as_a_time_of_day(text, expected):
    window = {"type": "time_range", "configuration": {"start_time": text, "end_time": "18:00"}}
    tables, errors = build(session_record(review={"id": RID, "time_window": window}))
    assert errors == []
    assert tables["reviews"].column("time_window_start").to_pylist() == [expected]
    assert tables["record_warnings"].num_rows == 0


@pytest.mark.parametrize(
    "text", ["24:00", "9:5", "09:60", "009:00", "09:00:00", " 9:00", "9.00", "", "nine"]
)
def test_a_time_window_go_would_refuse_is_nulled_with_a_warning(text):
    window = {"type": "time_range", "configuration": {"start_time": text, "end_time": "18:00"}}
    tables, errors = build(session_record(review={"id": RID, "time_window": window}))
    assert errors == []
    assert tables["reviews"].column("time_window_start").to_pylist() == [None]
    assert tables["reviews"].column("time_window_end").to_pylist() == [time(18, 0)]
    [warning] = tables["record_warnings"].to_pylist()
    assert (warning["field"], warning["kind"]) == (
        "review.time_window.configuration.start_time",
        "malformed",
    )


def test_values_outside_the_known_sets_are_stored_as_they_came_and_counted():
    record = session_record(
        identity_type="sidecar",
        recording_format="vnc",
        status="archived",
        verb="stream",
        review={
            "id": RID,
            "type": "standing",
            "status": "EXPIRED",
            "review_groups_data": [{"id": GID, "status": "EXPIRED"}],
        },
        event_stream=[[0.5, "i", b64(b"ls\n")], [0.6, "x", b64(b"\x00new")], [0.7, "x", b64(b"")]],
    )
    builder = DayBuilder(DAY)
    builder.add_session(record, synced_at=SYNCED)
    tables = builder.tables()
    row = tables["sessions"].to_pylist()[0]
    assert (row["identity_type"], row["recording_format"], row["status"], row["verb"]) == (
        "sidecar",
        "vnc",
        "archived",
        "stream",
    )
    assert tables["reviews"].to_pylist()[0]["status"] == "EXPIRED"
    assert tables["reviews"].to_pylist()[0]["type"] == "standing"
    assert tables["review_groups"].to_pylist()[0]["status"] == "EXPIRED"
    assert tables["session_events"].column("event_type").to_pylist() == ["i", "x", "x"]
    assert tables["session_events"].column("payload").to_pylist() == [b"ls\n", b"\x00new", b""]
    unknown = {
        (w["field"], w["value"])
        for w in tables["record_warnings"].to_pylist()
        if w["kind"] == "unknown_value"
    }
    assert unknown == {
        ("identity_type", '"sidecar"'),
        ("recording_format", '"vnc"'),
        ("status", '"archived"'),
        ("verb", '"stream"'),
        ("review.type", '"standing"'),
        ("review.status", '"EXPIRED"'),
        ("review.review_groups_data.status", '"EXPIRED"'),
        ("event_stream.type", '"x"'),
    }
    assert builder.warning_counts['unknown_value event_stream.type="x"'] == 1
    # An EXPIRED review never ran: the data contract calls such a session final.
    assert row["is_final"] is True


def test_known_values_and_an_empty_connection_load_without_warnings():
    record = session_record(
        connection="", recording_format="pty", identity_type="machine", machine_identity_id="m-1"
    )
    tables, errors = build(record)
    assert errors == []
    row = tables["sessions"].to_pylist()[0]
    assert (row["connection"], row["recording_format"]) == ("", "pty")
    assert tables["record_warnings"].num_rows == 0


def test_rdp_handshake_and_bitmap_events_load_with_exact_bytes_and_times():
    frame = (
        b'{"x":0,"y":16,"width":64,"height":32,"bits_per_pixel":32,"compressed":true,"data":"AAEC"}'
    )
    record = session_record(
        connection_subtype="rdp",
        recording_format="rdp",
        event_stream=[[0, "h", b64(b"\x03\x00\x00\x13handshake")], [1.25, "b", b64(frame)]],
    )
    tables, errors = build(record)
    assert errors == []
    events = tables["session_events"].to_pylist()
    assert [(e["event_type"], e["payload"], e["elapsed_seconds"]) for e in events] == [
        ("h", b"\x03\x00\x00\x13handshake", 0.0),
        ("b", frame, 1.25),
    ]
    assert events[1]["event_time"] == datetime(2026, 11, 1, 10, 0, 1, 567600, tzinfo=UTC)
    assert tables["record_warnings"].num_rows == 0


def test_a_done_session_that_says_event_size_0_loads_the_stream_it_has():
    record = session_record(event_size=0, metrics={"event_size": 0, "truncated": False})
    tables, errors = build(record)
    assert errors == []
    assert tables["sessions"].column("event_count").to_pylist() == [3]
    assert tables["session_events"].num_rows == 3


def test_a_session_ended_because_its_credentials_expired_loads_as_final():
    tables, errors = build(session_record(exit_code=None, review=None))
    assert errors == []
    row = tables["sessions"].to_pylist()[0]
    assert (row["status"], row["exit_code"], row["is_final"]) == ("done", None, True)
    assert row["end_date"] is not None


def test_the_undecodable_stream_message_loads_the_session_and_records_a_reject():
    msg = "An internal error occurred: unable to decode the event stream, reason=invalid"
    tables, errors = build(session_record(event_stream=[msg]))
    assert errors == []
    assert tables["sessions"].column("stream_status").to_pylist() == ["unreadable"]
    assert tables["session_events"].num_rows == 0
    rejects = tables["rejects"].to_pylist()
    assert [(r["session_id"], r["stage"]) for r in rejects] == [(SID, "stream")]


def test_unknown_new_fields_are_counted_not_fatal():
    builder = DayBuilder(DAY)
    builder.add_session(session_record(brand_new_field={"x": 1}), synced_at=SYNCED)
    assert builder.unknown_fields == {"brand_new_field": 1}


def test_a_session_seen_twice_in_a_day_is_rejected_the_second_time():
    tables, errors = build(session_record(), session_record())
    assert tables["sessions"].num_rows == 1
    assert [e.reason for e in errors] == ["duplicate session id in the same day"]


def test_ddl_follows_the_arrow_schema():
    ddl = schema.ddl(schema.SESSIONS)
    assert '"start_date" TIMESTAMPTZ NOT NULL' in ddl
    assert '"metadata" JSON' in ddl
    assert '"time_window_start" TIME' in schema.ddl(schema.REVIEWS)
    assert '"force_approval_groups" VARCHAR[]' in schema.ddl(schema.REVIEWS)
    assert '"payload" BLOB' in schema.ddl(schema.SESSION_EVENTS)
    assert isinstance(schema.SESSIONS.schema, pa.Schema)
