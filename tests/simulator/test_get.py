"""`GET /api/sessions/{id}`: expand, event_stream renderings, download links, record format."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson

from hoop_sessions.simulator import Gateway
from hoop_sessions.simulator.plan import SessionPlan

from .support import find_plan, second_window

FULL = "event_stream,session_input"
UNDECODABLE = "An internal error occurred: unable to decode the event stream"
RFC3339_US = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,5}[1-9])?Z")
RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,2}[1-9])?Z")


def _get(client: httpx.Client, session_id: str, **params: str) -> dict[str, Any]:
    response = client.get(f"/api/sessions/{session_id}", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _finished(kind: str, gw: Gateway, **more: Any) -> SessionPlan:
    def wanted(plan: SessionPlan, state: Any) -> bool:
        return (
            plan.stream.kind == kind
            and state.finished
            and all(getattr(plan, k) == v for k, v in more.items())
        )

    return find_plan(gw.dataset, wanted)


def _output(record: dict[str, Any]) -> bytes:
    return b"".join(base64.b64decode(e[2]) for e in record["event_stream"] if e[1] in ("o", "e"))


def test_without_expand_the_script_is_loaded_and_the_stream_key_absent(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = _finished("sql", rich_gateway, verb="exec")
    record = _get(rich, plan.id)
    assert record["script"] == {"data": plan.script}
    assert "event_stream" not in record


def test_expand_event_stream_alone_leaves_the_script_empty(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = _finished("sql", rich_gateway, verb="exec")
    record = _get(rich, plan.id, expand="event_stream")
    assert record["script"] == {"data": ""}
    assert record["event_stream"]


def test_expand_event_stream_and_session_input_gives_both(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = _finished("sql", rich_gateway, verb="exec")
    record = _get(rich, plan.id, expand=FULL)
    assert record["script"] == {"data": plan.script}
    assert record["script_size"] == len(orjson.dumps(plan.script)) - 2
    for elapsed, kind, payload in record["event_stream"]:
        assert isinstance(elapsed, float | int) and kind in ("i", "o", "e")
        base64.b64decode(payload, validate=True)


def test_the_raw_stream_is_stored_json_and_event_size_counts_its_bytes(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = _finished("shell", rich_gateway)
    record = _get(rich, plan.id, expand=FULL)
    compact = orjson.dumps(record["event_stream"])
    assert record["event_size"] == record["metrics"]["event_size"] == len(compact)


def test_utf8_joins_output_and_error_events_as_text(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = _finished("sql", rich_gateway)
    raw = _get(rich, plan.id, expand=FULL)
    text = _get(rich, plan.id, expand=FULL, event_stream="utf8")
    assert text["event_stream"] == [_output(raw).decode()]
    assert text["event_size"] == len(_output(raw).decode())  # runes, not bytes


def test_utf8_falls_back_to_the_error_message_on_control_bytes_or_invalid_utf8(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    for kind in ("shell", "latin1", "nul"):  # ANSI escapes, Latin-1 bytes, NUL bytes
        plan = _finished(kind, rich_gateway)
        stream = _get(rich, plan.id, expand=FULL, event_stream="utf8")["event_stream"]
        assert len(stream) == 1 and stream[0].startswith(UNDECODABLE), kind


def test_base64_encodes_the_same_output_bytes(rich: httpx.Client, rich_gateway: Gateway) -> None:
    for kind in ("shell", "latin1", "sql"):
        plan = _finished(kind, rich_gateway)
        raw = _get(rich, plan.id, expand=FULL)
        encoded = _get(rich, plan.id, expand=FULL, event_stream="base64")
        assert encoded["event_stream"] == [base64.b64encode(_output(raw)).decode()]
        assert encoded["event_size"] == len(encoded["event_stream"][0])


def test_an_unknown_event_stream_format_is_422_only_when_there_is_a_stream(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = _finished("sql", rich_gateway)
    response = rich.get(f"/api/sessions/{plan.id}", params={"expand": FULL, "event_stream": "hex"})
    assert response.status_code == 422
    assert response.json() == {"message": "event_stream attribute has an unknown type format"}
    without = _finished("none", rich_gateway)
    assert (
        rich.get(
            f"/api/sessions/{without.id}", params={"expand": FULL, "event_stream": "hex"}
        ).status_code
        == 200
    )


def test_raw_queries_extracts_the_sql_from_postgres_wire_protocol_input(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = _finished("pgwire", rich_gateway, verb="exec")
    record = _get(rich, plan.id, expand=FULL, event_stream="raw-queries")
    queries = [base64.b64decode(e[2]).decode() for e in record["event_stream"]]
    assert queries == [plan.script]
    assert record["event_size"] == len(plan.script.encode())


def test_postgres_streams_hold_binary_wire_protocol_input_events_only(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = _finished("pgwire", rich_gateway)
    stream = _get(rich, plan.id, expand=FULL)["event_stream"]
    assert {e[1] for e in stream} == {"i"}
    packets = [base64.b64decode(e[2]) for e in stream]
    assert packets[0][4:8] == b"\x00\x03\x00\x00"  # startup message, protocol 3.0
    assert packets[-1] == b"X\x00\x00\x00\x04"  # terminate


def test_an_undecodable_stream_is_replaced_by_the_gateways_error_message(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = _finished("undecodable", rich_gateway)
    record = _get(rich, plan.id, expand=FULL)
    assert len(record["event_stream"]) == 1
    assert record["event_stream"][0].startswith(UNDECODABLE + " due to invalid characters.")
    response = rich.get(f"/api/sessions/{plan.id}", params={"expand": FULL, "event_stream": "utf8"})
    assert response.status_code == 500
    assert response.json() == {"message": "failed parsing blob stream"}


def test_empty_streams_are_empty_lists_and_missing_streams_have_no_key(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    assert _get(rich, _finished("empty", rich_gateway).id, expand=FULL)["event_stream"] == []
    assert "event_stream" not in _get(rich, _finished("none", rich_gateway).id, expand=FULL)


def test_extension_returns_a_five_minute_download_link_instead(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = _finished("shell", rich_gateway)
    response = rich.get(f"/api/sessions/{plan.id}", params={"extension": "csv", "events": "o,e"})
    assert response.status_code == 200
    assert b"\\u0026" in response.content  # c.JSON escapes the & of the query string
    link = response.json()
    assert list(link) == ["download_url", "expire_at"]
    assert link["download_url"].startswith(
        f"{rich_gateway.url}/api/sessions/{plan.id}/download?token="
    )
    assert "&extension=csv&" in link["download_url"] and link["download_url"].endswith(
        "&events=o,e"
    )
    expire = datetime.fromisoformat(link["expire_at"].replace("Z", "+00:00"))
    assert expire - rich_gateway.now == timedelta(minutes=5)


def test_null_valued_optional_keys_are_absent(rich: httpx.Client, rich_gateway: Gateway) -> None:
    plain = find_plan(
        rich_gateway.dataset,
        lambda p, s: (
            p.batch_id is None
            and p.correlation_id is None
            and p.user.machine_identity_id is None
            and p.review is not None
        ),
    )
    record = _get(rich, plain.id, expand=FULL)
    for key in ("session_batch_id", "correlation_id", "machine_identity_id"):
        assert key not in record
    assert "rejection_reason" not in record["review"]
    machine = find_plan(
        rich_gateway.dataset,
        lambda p, s: p.user.machine_identity_id is not None and p.batch_id is not None,
    )
    record = _get(rich, machine.id)
    assert record["identity_type"] == "machine"
    assert record["machine_identity_id"] == machine.user.machine_identity_id
    assert record["session_batch_id"] == machine.batch_id


def test_a_rejection_reason_is_present_when_a_reviewer_gave_one(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = find_plan(
        rich_gateway.dataset,
        lambda p, s: (
            s.review_status == "REJECTED"
            and p.review is not None
            and p.review.rejection_reason is not None
        ),
    )
    record = _get(rich, plan.id)
    assert record["review"]["status"] == "REJECTED"
    assert record["review"]["rejection_reason"] == plan.review.rejection_reason  # type: ignore[union-attr]
    assert record["end_date"] is None and record["exit_code"] is None and record["status"] == "done"


def test_times_are_trimmed_rfc3339_and_access_duration_is_in_nanoseconds(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = find_plan(
        rich_gateway.dataset,
        lambda p, s: (
            s.review_status == "APPROVED" and p.review is not None and p.review.type == "jit"
        ),
    )
    record = _get(rich, plan.id)
    assert RFC3339_US.fullmatch(record["start_date"])
    review = record["review"]
    assert RFC3339_MS.fullmatch(review["created_at"]) and RFC3339_MS.fullmatch(review["revoke_at"])
    assert review["access_duration"] == plan.review.access_duration_s * 10**9  # type: ignore[union-attr]
    approved = [g for g in review["review_groups_data"] if g["status"] == "APPROVED"]
    assert approved and all(RFC3339_MS.fullmatch(g["review_date"]) for g in approved)
    assert all(set(g["reviewed_by"]) == {"id", "name", "email", "slack_id"} for g in approved)


def test_get_bodies_escape_html_characters_and_end_with_a_newline_like_gos_encoder(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = find_plan(
        rich_gateway.dataset, lambda p, s: p.metadata is not None and "<" in str(p.metadata)
    )
    response = rich.get(f"/api/sessions/{plan.id}")
    assert response.content.endswith(b"}\n")
    assert b"<" not in response.content and b"&" not in response.content
    assert b"\\u003curgent\\u003e" in response.content and b"\\u0026" in response.content
    assert response.json()["metadata"] == plan.metadata


def test_list_bodies_do_not_escape_html_characters(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = find_plan(
        rich_gateway.dataset, lambda p, s: p.metadata is not None and "<" in str(p.metadata)
    )
    response = rich.get("/api/sessions", params=second_window(_get(rich, plan.id)["start_date"]))
    assert b"<urgent>" in response.content and response.content.endswith(b"}\n")


def test_a_list_row_is_stripped_of_what_only_a_get_returns(
    rich: httpx.Client, rich_gateway: Gateway
) -> None:
    plan = find_plan(
        rich_gateway.dataset,
        lambda p, s: (
            s.finished
            and p.ai_analysis is not None
            and p.review is not None
            and p.review.policy.time_window is not None
        ),
    )
    full = _get(rich, plan.id, expand=FULL)
    rows = rich.get("/api/sessions", params=second_window(full["start_date"])).json()["data"]
    row = next(r for r in rows if r["id"] == plan.id)
    assert row["script"] is None and "event_stream" not in row and row["ai_analysis"] is None
    for key in (
        "time_window",
        "access_request_rule_name",
        "min_approvals",
        "force_approval_groups",
    ):
        assert row["review"][key] is None
    assert full["ai_analysis"] is not None and full["review"]["time_window"]["type"] == "time_range"
    assert full["review"]["min_approvals"] == 1
    same = (
        "status",
        "metrics",
        "event_size",
        "start_date",
        "end_date",
        "exit_code",
        "user",
        "connection_tags",
    )
    assert {k: row[k] for k in same} == {k: full[k] for k in same}
