"""Ground truth: the JSONL export and the planted violations, checked against the HTTP API."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from hoop_sessions.simulator import (
    USERS_BY_EMAIL,
    VIOLATIONS,
    Dataset,
    SimulatorConfig,
    export_truth,
    serve,
)

from .support import RICH, SMALL, START, client_for, list_all

UNREADABLE = "An internal error occurred: unable to decode the event stream"


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _is_final(r: dict[str, Any], now: datetime) -> bool:
    review = r["review"]
    if review is None:
        return r["status"] == "done"
    if review["status"] in ("REJECTED", "REVOKED", "EXECUTED", "EXPIRED"):
        return True
    return (
        review["type"] == "jit"
        and review["status"] == "APPROVED"
        and review["revoke_at"] is not None
        and _time(review["revoke_at"]) <= now
    )


Grant = tuple[datetime, datetime, str]  # approved at, revoke_at, review id


def grants_of(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[Grant]]:
    """JIT grants by (user_id, connection): from revoke_at - access_duration to revoke_at."""
    grants: dict[tuple[str, str], list[Grant]] = {}
    for r in records:
        review = r["review"]
        if review and review["type"] == "jit" and review["revoke_at"] is not None:
            end = _time(review["revoke_at"])
            approved = end - timedelta(microseconds=review["access_duration"] // 1000)
            key = (r["user_id"], r["connection"])
            grants.setdefault(key, []).append((approved, end, review["id"]))
    return grants


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")  # "9:00" is as valid as "09:00"
    return int(hours) * 60 + int(minutes)


def evaluate(
    r: dict[str, Any], now: datetime, grants: dict[tuple[str, str], list[Grant]]
) -> set[str]:
    """The README's definitions of the planted violations, written against the JSON records
    only (independently of the simulator's own code)."""
    env = (r["connection_tags"] or {}).get("environment")
    review = r["review"] or {}
    groups = review.get("review_groups_data") or []
    stream = r.get("event_stream") or []
    start = _time(r["start_date"])
    times = [
        start + timedelta(microseconds=round(e[0] * 1e6)) for e in stream if isinstance(e, list)
    ]
    window = review.get("time_window")
    metrics = r["metrics"] or {}
    masking = metrics.get("data_masking") or {}
    covering = max(
        (
            g
            for g in grants.get((r["user_id"], r["connection"]), [])
            if not review and g[0] <= start < g[1]
        ),
        key=lambda g: (g[0], g[2]),  # the latest approved, then the largest review id
        default=None,
    )
    grant_end = (
        _time(review["revoke_at"])
        if review.get("type") == "jit" and review.get("revoke_at")
        else (covering[1] if covering else None)
    )
    found = {
        "prod_without_review": env == "prod" and not review and covering is None,
        "events_without_approval": review.get("status") in ("PENDING", "REJECTED", "EXPIRED")
        and bool(times),
        "self_approval": any(
            g["status"] == "APPROVED" and g["reviewed_by"]["email"] == r["user"] for g in groups
        ),
        "outside_time_window": bool(window)
        and any(
            not _minutes(window["configuration"]["start_time"])
            <= t.hour * 60 + t.minute
            < _minutes(window["configuration"]["end_time"])
            for t in times
        ),
        "events_after_revoke": grant_end is not None and any(t > grant_end for t in times),
        "break_glass": any(g["forced_review"] and g["status"] == "APPROVED" for g in groups),
        "min_approvals_not_met": review.get("status") in ("APPROVED", "PROCESSING", "EXECUTED")
        and review.get("min_approvals") is not None
        and sum(g["status"] == "APPROVED" for g in groups) < review["min_approvals"],
        "long_session": r["end_date"] is not None
        and _time(r["end_date"]) - start > timedelta(hours=4),
        "failed_prod_session": env == "prod" and r["exit_code"] not in (None, 0),
        "not_final_after_3_days": start < now - timedelta(days=3) and not _is_final(r, now),
        "masking_errors": masking.get("err_count", 0) > 0,
        "truncated_stream": bool((r["metrics"] or {}).get("truncated")),
        "machine_identity_on_prod": env == "prod" and r["identity_type"] == "machine",
        "guardrail_match": bool(r["guardrails_info"]),
        "ai_high_risk": (r["ai_analysis"] or {}).get("risk_level") == "high",
        "unreadable_stream": any(isinstance(e, str) and e.startswith(UNREADABLE) for e in stream),
        "event_size_zero_with_stream": r["status"] == "done"
        and r.get("event_size") == 0
        and bool(times),
    }
    return {name for name, hit in found.items() if hit}


def _read(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


NEWER = replace(RICH, newer_gateway=True)


@pytest.mark.parametrize(
    ("cfg", "hours_before_clock"), [(RICH, 0), (RICH, 30), (NEWER, 0)], ids=["0", "30", "newer"]
)
def test_the_planted_violations_are_what_the_documented_rules_find_in_the_truth(
    tmp_path: Path, cfg: SimulatorConfig, hours_before_clock: int
) -> None:
    now = cfg.clock - timedelta(hours=hours_before_clock)
    path = tmp_path / "truth.jsonl"
    export_truth(cfg, path, now=now)
    found: dict[str, set[str]] = {name: set() for name in VIOLATIONS}
    records = _read(path)
    grants = grants_of(records)
    for record in records:
        for name in evaluate(record, now, grants):
            found[name].add(record["id"])
    planted = Dataset(cfg).planted(now=now)
    assert found == planted
    assert all(planted[name] for name in VIOLATIONS), [n for n in VIOLATIONS if not planted[n]]


def test_the_truth_is_byte_for_byte_what_the_api_returns(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    count = export_truth(SMALL, path)
    lines = path.read_bytes().splitlines(keepends=True)
    assert count == len(lines) == 240
    with serve(SMALL) as gw, client_for(gw) as client:
        listed = {r["id"] for r in list_all(client, {})}
        assert {orjson.loads(line)["id"] for line in lines} == listed
        for line in lines[::17]:
            session_id = orjson.loads(line)["id"]
            response = client.get(
                f"/api/sessions/{session_id}", params={"expand": "event_stream,session_input"}
            )
            assert response.content == line


def test_a_newer_gateways_truth_is_what_its_api_returns_with_late_rows_left_out(
    tmp_path: Path,
) -> None:
    # The clock is within a day of the last day's end: some sidecar rows have not appeared yet.
    cfg = replace(SMALL, newer_gateway=True, now=datetime(2026, 11, 4, 6, tzinfo=UTC))
    path = tmp_path / "truth.jsonl"
    count = export_truth(cfg, path)
    lines = path.read_bytes().splitlines(keepends=True)
    assert count == len(lines) < 240
    with serve(cfg) as gw, client_for(gw) as client:
        listed = {r["id"] for r in list_all(client, {})}
        assert {orjson.loads(line)["id"] for line in lines} == listed
        for line in lines[::7]:
            session_id = orjson.loads(line)["id"]
            response = client.get(
                f"/api/sessions/{session_id}", params={"expand": "event_stream,session_input"}
            )
            assert response.content == line


def test_the_truth_at_an_earlier_clock_has_fewer_sessions_and_open_ones(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    midday = datetime(2026, 11, 2, 12, tzinfo=UTC)
    count = export_truth(SMALL, path, now=midday)
    records = _read(path)
    assert 80 < count < 160
    assert all(_time(r["start_date"]) <= midday for r in records)
    assert any(r["status"] == "open" for r in records)
    assert [r["start_date"] for r in records] == sorted(
        (r["start_date"] for r in records), key=_time
    )


def test_the_truth_of_a_non_auditor_token_holds_only_what_it_can_see(tmp_path: Path) -> None:
    person = USERS_BY_EMAIL["ben.okafor@acme.example"]
    cfg = SimulatorConfig(
        seed=7, start=START, days=3, sessions_per_day=80, identity=person.identity()
    )
    path = tmp_path / "truth.jsonl"
    assert 0 < export_truth(cfg, path) < 240
    records = _read(path)
    for r in records:
        reviewers = {g["group"] for g in (r["review"] or {}).get("review_groups_data", [])}
        assert r["user_id"] == person.subject or reviewers & set(person.groups)
        if r["user_id"] != person.subject:
            assert "event_stream" not in r


def _retrying_get(client: httpx.Client, path: str, params: dict[str, Any]) -> httpx.Response:
    for _ in range(8):
        try:
            response = client.get(path, params=params)
        except httpx.TransportError:
            continue
        if response.status_code < 500 and response.status_code != 429:
            return response
    raise AssertionError(f"{path} kept failing")


def test_a_retrying_client_that_pages_closed_days_rebuilds_the_truth_through_faults(
    tmp_path: Path,
) -> None:
    cfg = SimulatorConfig(
        seed=9,
        start=START,
        days=2,
        sessions_per_day=60,
        burst_size=15,
        fault_rate=0.3,
        slow_response_s=0.5,
    )
    path = tmp_path / "truth.jsonl"
    export_truth(cfg, path)
    truth = {orjson.loads(line)["id"]: line for line in path.read_bytes().splitlines(keepends=True)}
    synced: dict[str, bytes] = {}
    with serve(cfg) as gw, client_for(gw, timeout=0.25) as client:
        for offset_days in range(cfg.days):
            day = START + timedelta(days=offset_days)
            window = {
                "start_date": f"{day}T00:00:00Z",
                "end_date": f"{day + timedelta(days=1)}T00:00:00Z",
            }
            ids: list[str] = []
            offset = 0
            while True:
                params = {**window, "limit": 25, "offset": offset, "count": "none"}
                page = _retrying_get(client, "/api/sessions", params).json()
                offset += len(page["data"])
                # The window's upper bound belongs to the next day.
                ids += [r["id"] for r in page["data"] if r["start_date"].startswith(str(day))]
                if not page["has_next_page"]:
                    break
            for session_id in ids:
                full = {"expand": "event_stream,session_input"}
                synced[session_id] = _retrying_get(
                    client, f"/api/sessions/{session_id}", full
                ).content
        assert sum(gw.stats.faults.values()) > 10
    assert synced == truth
