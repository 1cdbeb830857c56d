"""The gateway behaviours read off hoop's source (1.148): reviews, JIT grants, RDP recordings,
credential-expiry and restart endings, time windows, and the newer gateway's shapes; and the
planted-violation predicates on hand-picked sessions of each kind."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from hoop_sessions.simulator import Dataset, SimulatorConfig
from hoop_sessions.simulator.catalog import CONNECTIONS, TimeWindow
from hoop_sessions.simulator.cli import simulate
from hoop_sessions.simulator.plan import SessionPlan
from hoop_sessions.simulator.streams import Event, cap_rdp_events, raw_event_json
from hoop_sessions.simulator.timefmt import US, from_us, to_us
from hoop_sessions.simulator.violations import violations_of

from .support import RICH, START, find_plan, gateway_for, list_all

NEWER = SimulatorConfig(seed=7, start=START, days=7, sessions_per_day=200, newer_gateway=True)


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset(RICH)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _record(ds: Dataset, plan: SessionPlan, now_us: int | None = None) -> dict[str, Any]:
    now = None if now_us is None else from_us(now_us)
    return ds.record(plan.id, now=now)


def _event_times(record: dict[str, Any]) -> list[datetime]:
    start = _time(record["start_date"])
    stream = record.get("event_stream") or []
    return [start + timedelta(microseconds=round(e[0] * 1e6)) for e in stream]


def _plans(ds: Dataset) -> list[SessionPlan]:
    return [p for day in ds.days() for p in ds.day(day).plans]


# --- reviews --------------------------------------------------------------------------------


def test_an_approved_one_time_review_has_its_approval_time_as_revoke_at(ds: Dataset) -> None:
    plan = find_plan(
        ds,
        lambda p, s: (
            p.review is not None and p.review.type == "onetime" and s.review_status == "EXECUTED"
        ),
    )
    review = _record(ds, plan)["review"]
    approvals = [_time(g["review_date"]) for g in review["review_groups_data"]]
    assert review["access_duration"] == 0
    assert _time(review["revoke_at"]) == max(approvals)


def test_a_manual_revoke_changes_the_status_but_leaves_revoke_at_at_approval_plus_duration(
    ds: Dataset,
) -> None:
    plan = find_plan(ds, lambda p, s: s.review_status == "REVOKED")
    assert plan.review is not None and plan.review.decided_us is not None
    review = _record(ds, plan)["review"]
    expected = plan.review.decided_us + plan.review.access_duration_s * US
    assert _time(review["revoke_at"]) == from_us(expected - expected % 1000)
    assert any(g["status"] == "REVOKED" for g in review["review_groups_data"])


def test_covered_sessions_are_the_grant_owners_on_its_connection_while_it_is_valid(
    ds: Dataset,
) -> None:
    covered = [p for p in _plans(ds) if p.covered_by is not None]
    assert len(covered) >= 20
    for plan in covered:
        grant = ds.plan(plan.covered_by or "")
        assert grant is not None and grant.review is not None
        record, grant_record = _record(ds, plan), _record(ds, grant)
        assert record["review"] is None
        assert record["user_id"] == grant_record["user_id"]
        assert record["connection"] == grant_record["connection"]
        revoke_at = _time(grant_record["review"]["revoke_at"])
        approved = revoke_at - timedelta(seconds=grant.review.access_duration_s)
        assert approved <= _time(record["start_date"]) < revoke_at


def test_some_covered_sessions_outlive_the_grant_within_their_own_timeout(ds: Dataset) -> None:
    late = 0
    for plan in _plans(ds):
        grant = ds.plan(plan.covered_by or "")
        if grant is None or grant.review is None:
            continue
        record = _record(ds, plan)
        revoke_at = _time(_record(ds, grant)["review"]["revoke_at"])
        end = _time(record["end_date"])
        # Each covered session has a timeout of the whole access duration from its own start.
        assert end - _time(record["start_date"]) <= timedelta(
            seconds=grant.review.access_duration_s + 2
        )
        late += end > revoke_at
    assert late >= 3


# --- the planted predicates on hand-picked sessions -----------------------------------------


def test_a_one_time_session_active_after_its_approval_is_not_activity_after_revoke(
    ds: Dataset,
) -> None:
    now_us = ds.now_us()
    plan = find_plan(
        ds,
        lambda p, s: (
            p.review is not None
            and p.review.type == "onetime"
            and s.review_status == "EXECUTED"
            and bool(ds.events(p))
        ),
    )
    observed = ds.observed(plan, now_us)
    assert observed.state.review is not None and observed.state.review.revoke_at_us is not None
    # Its events placed an hour past revoke_at (= the approval time): still nothing to flag.
    late = observed.state.review.revoke_at_us + 3600 * US - plan.start_us
    moved = replace(
        observed, events=[Event(late + e.elapsed_us, e.type, e.payload) for e in observed.events]
    )
    assert all(t > observed.state.review.revoke_at_us for t in moved.event_times())
    assert "events_after_revoke" not in violations_of(moved)
    # The same events under a JIT review of that approval would be flagged.
    jit_plan = find_plan(
        ds,
        lambda p, s: (
            p.review is not None and p.review.type == "jit" and s.review_status == "APPROVED"
        ),
    )
    jit = ds.observed(jit_plan, now_us)
    assert jit.state.review is not None and jit.state.review.revoke_at_us is not None
    past = jit.state.review.revoke_at_us + US - jit_plan.start_us
    assert "events_after_revoke" in violations_of(
        replace(jit, events=[Event(past, "o", b"still here")])
    )


def test_a_covered_session_active_past_its_grant_is_activity_after_revoke(ds: Dataset) -> None:
    now_us = ds.now_us()
    hits = 0
    for plan in _plans(ds):
        grant = ds.plan(plan.covered_by or "")
        if grant is None:
            continue
        revoke_at = _time(_record(ds, grant)["review"]["revoke_at"])
        past = any(t > revoke_at for t in _event_times(_record(ds, plan)))
        observed = ds.observed(plan, now_us)
        assert observed.grant is not None and observed.grant.session_id == grant.id
        assert ("events_after_revoke" in violations_of(observed)) == past
        hits += past
    assert hits


def test_a_covered_prod_session_counts_as_approved(ds: Dataset) -> None:
    now_us = ds.now_us()
    plan = find_plan(
        ds, lambda p, s: p.covered_by is not None and p.connection.environment == "prod"
    )
    assert "prod_without_review" not in violations_of(ds.observed(plan, now_us))
    uncovered = find_plan(
        ds,
        lambda p, s: (
            p.review is None and p.covered_by is None and p.connection.environment == "prod"
        ),
    )
    assert "prod_without_review" in violations_of(ds.observed(uncovered, now_us))


# --- RDP ------------------------------------------------------------------------------------


def test_an_rdp_session_has_no_stream_while_open_and_the_recorders_log_once_closed(
    ds: Dataset,
) -> None:
    plan = find_plan(ds, lambda p, s: p.stream.kind == "rdp" and s.status == "done")
    assert plan.connect_us is not None and plan.end_us is not None
    running = _record(ds, plan, (plan.connect_us + plan.end_us) // 2)
    assert running["status"] == "open" and "event_stream" not in running
    assert running["metrics"] is None

    closed = _record(ds, plan)
    assert (closed["type"], closed["connection_subtype"], closed["verb"]) == (
        "custom",
        "rdp",
        "connect",
    )
    stream = closed["event_stream"]
    assert stream[0][:2] == [0, "h"] and {e[1] for e in stream[1:]} == {"b"}
    bitmaps = [orjson.loads(base64.b64decode(e[2])) for e in stream[1:]]
    assert all(len(base64.b64decode(b["data"])) > 0 for b in bitmaps)
    metrics = closed["metrics"]
    assert list(metrics) == ["bitmap_count", "canvas_height", "canvas_width", "event_size"]
    assert metrics["bitmap_count"] == len(bitmaps)
    assert metrics["canvas_width"] == max(b["x"] + b["width"] for b in bitmaps)
    assert metrics["canvas_height"] == max(b["y"] + b["height"] for b in bitmaps)
    raw = ds.get_body(ds.plan(plan.id), ds.now_us())  # type: ignore[arg-type]
    assert isinstance(raw, bytes)
    assert metrics["event_size"] == len(orjson.dumps(orjson.loads(raw)["event_stream"]))


def test_the_rdp_recorder_skips_oversized_events_and_stops_at_its_cap() -> None:
    def bitmap(t: int, size: int) -> Event:
        return Event(t * US, "b", b"x" * size)

    def line(event: Event) -> int:
        return len(raw_event_json(event)) + 1

    handshake = Event(0, "h", b"hello")
    small, big = bitmap(1, 30), bitmap(2, 300)
    events = [handshake, small, big, bitmap(3, 30), bitmap(4, 30), bitmap(5, 30)]
    kept = cap_rdp_events(events, max_total=3 * line(small), max_event=line(small) + 10)
    # The handshake stays, the oversized frame is skipped, recording stops at the cap.
    assert kept == (handshake, small, events[3], events[4])


# --- endings --------------------------------------------------------------------------------


def test_the_credential_sweeper_ends_sessions_done_with_an_end_date_and_no_exit_code(
    ds: Dataset,
) -> None:
    now_us = ds.now_us()
    swept = [p for p in _plans(ds) if p.ending == "credentials"]
    assert swept
    for plan in swept:
        record = _record(ds, plan)
        assert record["status"] == "done" and record["end_date"] is not None
        assert record["exit_code"] is None and record["metrics"] is None
        expire = _time(record["metadata"]["credentials_expire_at"])
        assert timedelta(0) <= _time(record["end_date"]) - expire < timedelta(seconds=15)
        assert "failed_prod_session" not in violations_of(ds.observed(plan, now_us))


def test_a_restart_leaves_a_done_session_with_event_size_zero_and_a_partial_stream(
    ds: Dataset,
) -> None:
    now_us = ds.now_us()
    plan = find_plan(
        ds, lambda p, s: p.ending == "restart" and bool(ds.visible_events(p, s)), now_us
    )
    record = _record(ds, plan)
    assert record["status"] == "done"
    # Fresh metrics replace whatever the flushes had counted.
    assert record["metrics"] == {
        "data_masking": {
            "err_count": 0,
            "info_types": {},
            "total_redact_count": 0,
            "transformed_bytes": 0,
        },
        "event_size": 0,
        "truncated": False,
    }
    assert record["event_size"] == 0
    assert 0 < len(record["event_stream"]) <= len(ds.events(plan))
    assert "event_size_zero_with_stream" in violations_of(ds.observed(plan, now_us))


# --- time windows ---------------------------------------------------------------------------


def test_a_time_window_may_have_a_one_digit_hour(ds: Dataset) -> None:
    assert TimeWindow("9:00", "18:30").start_minute == 540
    assert TimeWindow("09:00", "18:30").end_minute == 1110
    windows = {c.review.time_window for c in CONNECTIONS if c.review and c.review.time_window}
    assert any(len(w.start.split(":")[0]) == 1 for w in windows if w is not None)
    plan = find_plan(
        ds,
        lambda p, s: (
            p.review is not None
            and p.review.policy.time_window is not None
            and len(p.review.policy.time_window.start) == 4
        ),
    )
    assert _record(ds, plan)["review"]["time_window"]["configuration"]["start_time"] == "6:30"


# --- a newer gateway ------------------------------------------------------------------------


def test_the_newer_gateway_shapes_are_off_by_default() -> None:
    assert SimulatorConfig().newer_gateway is False
    record = Dataset(RICH).record(Dataset(RICH).session_ids(START)[0])
    assert "recording_format" not in record


def test_a_newer_gateway_shows_expired_reviews_sidecar_and_control_plane_sessions() -> None:
    ds = Dataset(NEWER)
    records = [ds.record(i) for day in ds.days() for i in ds.session_ids(day)]
    assert {r["recording_format"] for r in records} == {"pty", "exec", "rdp", "raw"}
    assert any((r["review"] or {}).get("status") == "EXPIRED" for r in records)
    sidecar = [r for r in records if r["identity_type"] == "sidecar"]
    assert sidecar and all(r["recording_format"] == "raw" for r in sidecar)
    reaped = [r for r in sidecar if (r["metadata"] or {}).get("sidecar")]
    assert reaped and all(
        r["metadata"]["sidecar"]["reaped_at"] == r["end_date"] and r["exit_code"] is None
        for r in reaped
    )
    control = [r for r in records if r["user"] == "hoop@hoop.dev"]
    assert control and all(r["connection"] == "" and r["review"] for r in control)


def test_a_back_dated_sidecar_session_is_listed_only_hours_after_its_day() -> None:
    ds = Dataset(NEWER)
    plan = next(p for p in _plans(ds) if p.appears_us is not None)
    assert plan.appears_us is not None
    day_end = to_us(datetime.combine(plan.day + timedelta(days=1), datetime.min.time()))
    assert plan.appears_us > day_end
    window = {
        "start_date": f"{plan.day}T00:00:00Z",
        "end_date": f"{plan.day + timedelta(days=1)}T00:00:00Z",
    }
    with gateway_for(NEWER) as (gw, client):
        gw.set_now(from_us(plan.appears_us - US))
        assert plan.id not in {r["id"] for r in list_all(client, window)}
        assert client.get(f"/api/sessions/{plan.id}").status_code == 404
        gw.set_now(from_us(plan.appears_us))
        assert plan.id in {r["id"] for r in list_all(client, window)}


def test_the_cli_exports_a_newer_gateways_data(tmp_path: Any) -> None:
    path = tmp_path / "truth.jsonl"
    args = ["--start", "2026-11-01", "--days", "1", "--sessions-per-day", "30", "--token", "t"]
    result = CliRunner().invoke(simulate, [*args, "--newer-gateway", "--export", str(path)])
    assert result.exit_code == 0, result.output
    lines = path.read_bytes().splitlines()
    assert lines and all("recording_format" in orjson.loads(line) for line in lines)
