from datetime import UTC, date, datetime, time

import pyarrow as pa
import pytest

from hoop_sessions import schema
from hoop_sessions.flatten import DayBuilder, RecordRejected, is_final, parse_time
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


@pytest.mark.parametrize("text", ["2026-11-01", "2026-11-01 10:00:00Z", "yesterday", "2026-13-01T00:00:00Z", 5, None])
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
    assert tables["reviews"].to_pylist() == [{
        "review_id": RID, "session_id": SID, "start_day": DAY, "type": "jit", "status": "APPROVED",
        "access_duration_seconds": 1800.0,
        "created_at": datetime(2026, 11, 1, 9, 59, 0, 120000, tzinfo=UTC),
        "revoke_at": datetime(2026, 11, 1, 10, 30, 0, 500000, tzinfo=UTC),
        "time_window_start": time(9, 0), "time_window_end": time(18, 0),
        "access_request_rule_name": "prod-rule", "min_approvals": 1,
        "force_approval_groups": ["sre"], "rejection_reason": None,
    }]
    assert tables["review_groups"].to_pylist() == [{
        "review_group_id": GID, "review_id": RID, "session_id": SID, "start_day": DAY,
        "group_name": "sre", "status": "APPROVED", "forced_review": False, "reviewer_id": "u-2",
        "reviewer_email": "bob@example.com", "reviewer_name": "Bob", "reviewer_slack_id": "U1",
        "reviewed_at": datetime(2026, 11, 1, 10, 0, 0, 200000, tzinfo=UTC),
    }]


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
    record = session_record(end_date=None, exit_code=None, session_batch_id=DROP, correlation_id=DROP,
                            review=None, connection_tags=None, metrics=None, integrations_metadata=None,
                            event_stream=DROP, script=None, status="open", metadata=None)
    tables, errors = build(record)
    assert errors == []
    row = tables["sessions"].to_pylist()[0]
    for column in ("end_date", "duration_seconds", "exit_code", "session_batch_id", "correlation_id",
                   "review_id", "review_status", "metrics", "jira_issue_key", "redacted_count",
                   "stream_truncated", "script", "metadata"):
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
        ("ready", None, {"status": "APPROVED", "type": "jit", "revoke_at": "2026-11-10T02:59:59Z"}, False),
        ("done", None, {"status": "REVOKED", "type": "jit", "revoke_at": "2026-11-10T02:59:59Z"}, False),
        ("done", None, {"status": "REVOKED", "type": "jit", "revoke_at": LONG_AGO}, True),
        ("open", None, {"status": "APPROVED", "type": "jit", "revoke_at": LONG_AGO}, True),
        ("open", None, {"status": "APPROVED", "type": "jit", "revoke_at": "2026-11-08T03:00:01Z"}, False),
        ("done", None, {"status": "REVOKED", "type": "jit"}, False),  # no revoke_at: cannot tell
        ("open", None, {"status": "REJECTED", "type": "onetime"}, True),  # never ran
        ("open", None, {"status": "EXPIRED", "type": "jit"}, True),  # never ran (newer gateways)
        ("done", None, {"status": "PENDING", "type": "onetime"}, False),
        ("done", END, {"status": "REJECTED", "type": "onetime"}, True),
        ("done", END, {"status": "EXECUTED", "type": "onetime"}, True),
        ("ready", None, {"status": "EXECUTED", "type": "onetime"}, False),
        ("done", END, {"status": "APPROVED", "type": "jit", "revoke_at": "2026-11-10T03:00:01Z"}, True),
        ("done", None, {"status": "APPROVED", "type": "onetime"}, False),
    ],
)
def test_finality_follows_the_contract(status, end_date, review, final):
    assert is_final({"status": status, "end_date": end_date, "review": review}, SYNCED) is final


def test_a_session_whose_sidecar_was_reaped_is_never_final():
    record = {"status": "done", "end_date": END, "metadata": {"sidecar": {"reaped_at": END}}}
    assert is_final(record, SYNCED) is False
    assert is_final({**record, "metadata": {"sidecar": {}}}, SYNCED) is True


MALFORMED = {
    "not an object": ["a list"],
    "missing id": session_record(id=DROP),
    "non-uuid id": session_record(id="123"),
    "numeric id": session_record(id=42),
    "missing start_date": session_record(start_date=DROP),
    "unparsable start_date": session_record(start_date="11/01/2026 10:00"),
    "start_date on another day": session_record(start_date="2026-11-02T00:00:00Z"),
    "unparsable end_date": session_record(end_date="soon"),
    "exit_code as text": session_record(exit_code="0"),
    "event_size as float": session_record(event_size=1.5),
    "user as number": session_record(user=7),
    "metadata as list": session_record(metadata=[1]),
    "tags as string": session_record(connection_tags="team=banking;environment:prod"),
    "tag value as number": session_record(connection_tags={"env": 1}),
    "review as string": session_record(review="APPROVED"),
    "review without id": session_record(review={"status": "APPROVED"}),
    "duration as text": session_record(review={"id": RID, "access_duration": "30m"}),
    "time window garbage": session_record(review={"id": RID, "time_window": {"configuration": {"start_time": "9am"}}}),
    "groups not a list": session_record(review={"id": RID, "review_groups_data": {"a": 1}}),
    "group without id": session_record(review={"id": RID, "review_groups_data": [{"group": "sre"}]}),
    "invalid base64": session_record(event_stream=[[0.1, "o", "%%%"]]),
    "event of wrong length": session_record(event_stream=[[0.1, "o"]]),
    "event of wrong type": session_record(event_stream=[[0.1, "x", b64(b"a")]]),
    "negative elapsed": session_record(event_stream=[[-0.1, "o", b64(b"a")]]),
    "stream as object": session_record(event_stream={"o": "a"}),
    "script as string": session_record(script="SELECT 1"),
    "huge exit code": session_record(exit_code=2**70),
    "forced_review as string": session_record(review={"id": RID, "review_groups_data": [{"id": GID, "forced_review": "yes"}]}),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_record_is_rejected_with_a_reason_and_appends_nothing(kind):
    good = session_record(id="1b9f6a3c-1111-4222-8333-444455556666")
    tables, errors = build(MALFORMED[kind], good)
    assert len(errors) == 1
    assert errors[0].reason
    # The good session of the day still loads, and nothing of the bad one does.
    for name in ("sessions", "reviews", "review_groups", "connection_tags", "session_events"):
        ids = set(tables[name].column("session_id").to_pylist())
        assert ids <= {"1b9f6a3c-1111-4222-8333-444455556666"}, name
    assert tables["sessions"].num_rows == 1


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
