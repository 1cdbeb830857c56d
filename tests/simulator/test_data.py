"""The simulated data: realistic variety, day shapes (boundaries, bursts, big days), large streams."""

from __future__ import annotations

import base64
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import orjson

from hoop_sessions.simulator import Dataset, Gateway, SimulatorConfig, serve
from hoop_sessions.simulator.render import Body

from .support import (
    RICH,
    START,
    client_for,
    day_window,
    find_plan,
    gateway_for,
    list_all,
    second_window,
)

MIB = 1024 * 1024


def _records(ds: Dataset) -> list[dict[str, Any]]:
    return [ds.record(i) for day in ds.days() for i in ds.session_ids(day)]


def test_realistic_data_has_every_kind_of_record_the_api_doc_describes() -> None:
    records = _records(Dataset(RICH))
    environments = Counter((r["connection_tags"] or {}).get("environment") for r in records)
    assert {"prod", "staging", "dev", None} <= set(environments)
    assert {"payments", "orders", "platform"} <= {
        (r["connection_tags"] or {}).get("team") for r in records
    }
    assert {"database", "application", "custom", "postgres"} <= {r["type"] for r in records}
    assert "" in {r["connection_subtype"] for r in records} and "" in {
        r["resource_name"] for r in records
    }
    reviews = [r["review"] for r in records if r["review"]]
    assert {"onetime", "jit"} == {r["type"] for r in reviews}
    assert {"APPROVED", "EXECUTED", "REJECTED", "REVOKED", "PENDING"} <= {
        r["status"] for r in reviews
    }
    assert any(g["forced_review"] for r in reviews for g in r["review_groups_data"])
    assert any("rejection_reason" in r for r in reviews)
    assert {"open", "ready", "done"} == {r["status"] for r in records}
    assert {0, 1, 254} <= {r["exit_code"] for r in records}
    assert {"connect", "exec"} == {r["verb"] for r in records}
    assert {"user", "machine"} == {r["identity_type"] for r in records}
    assert any(
        r["integrations_metadata"] and r["integrations_metadata"].get("jira_issue_key")
        for r in records
    )
    masking = [
        r["metrics"]["data_masking"]
        for r in records
        if r["metrics"] and "data_masking" in r["metrics"]
    ]
    assert any(m["err_count"] > 0 for m in masking) and any(
        m["total_redact_count"] > 0 for m in masking
    )
    assert any(r["metrics"] and r["metrics"].get("truncated") for r in records)
    assert any(r["ai_analysis"] for r in records) and any(r["guardrails_info"] for r in records)
    assert any(r["labels"] for r in records) and any(r["metadata"] for r in records)
    assert all(
        r["id"] == str(uuid.UUID(r["id"])) and uuid.UUID(r["id"]).version == 4 for r in records
    )


def test_realistic_streams_include_every_kind_of_payload() -> None:
    records = _records(Dataset(RICH))
    payloads = [
        base64.b64decode(e[2])
        for r in records
        for e in r.get("event_stream") or []
        if isinstance(e, list)
    ]
    assert any(b"\x1b[" in p for p in payloads)  # ANSI colours
    assert any(p.startswith(b"SELECT") for p in payloads)  # SQL text
    assert any(p[:1] in (b"Q", b"P") for p in payloads)  # Postgres wire protocol

    def invalid(p: bytes) -> bool:
        try:
            p.decode()
        except UnicodeDecodeError:
            return True
        return False

    assert any(invalid(p) for p in payloads) and any(b"\x00" in p for p in payloads)
    assert any(r.get("event_stream") == [] for r in records)
    assert any("event_stream" not in r and r["status"] == "done" for r in records)
    assert any(isinstance((r.get("event_stream") or [None])[0], str) for r in records)
    assert any(
        e[1] == "e" for r in records for e in r.get("event_stream") or [] if isinstance(e, list)
    )
    assert any(
        r["end_date"]
        and r["exit_code"] is not None
        and r["review"] is None
        and r["end_date"] > r["start_date"][:11] + "05"
        for r in records
    )  # long sessions


def test_every_day_has_sessions_exactly_at_midnight_and_in_its_last_second(
    client: httpx.Client,
) -> None:
    rows = list_all(client, {})
    starts = {r["start_date"] for r in rows}
    for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
        assert f"{day}T00:00:00Z" in starts
        assert f"{day}T23:59:59.7Z" in starts and f"{day}T23:59:59.999999Z" in starts


def test_a_burst_puts_many_sessions_in_one_second_some_on_the_same_microsecond() -> None:
    cfg = SimulatorConfig(seed=3, start=START, days=1, sessions_per_day=120, burst_size=60)
    with gateway_for(cfg) as (_, client):
        rows = list_all(client, day_window(START))
        seconds = Counter(r["start_date"][:19] for r in rows)
        second, count = seconds.most_common(1)[0]
        assert count >= 60
        same = Counter(r["start_date"] for r in rows if r["start_date"].startswith(second))
        tied = [stamp for stamp, n in same.items() if n > 1]
        assert tied, "some sessions of the burst share their start_date exactly"
        tied_ids = [r["id"] for r in rows if r["start_date"] == tied[0]]
        assert tied_ids == sorted(tied_ids, reverse=True)
        bounds = second_window(second + "Z")
        in_window = [
            r["id"]
            for r in rows
            if bounds["start_date"] <= r["start_date"][:19] + "Z" <= bounds["end_date"]
        ]
        paged: list[str] = []
        while True:
            page = client.get(
                "/api/sessions", params={**bounds, "limit": 7, "offset": len(paged)}
            ).json()
            paged += [r["id"] for r in page["data"]]
            if not page["has_next_page"]:
                break
        assert paged == in_window


def test_a_day_is_generated_independently_of_the_other_simulated_days() -> None:
    short = Dataset(SimulatorConfig(seed=7, start=START, days=2, sessions_per_day=50))
    longer = Dataset(
        SimulatorConfig(seed=7, start=START - timedelta(days=3), days=6, sessions_per_day=50)
    )
    day = START + timedelta(days=1)
    assert short.session_ids(day) == longer.session_ids(day)
    now = short.cfg.clock
    assert short.record(short.session_ids(day)[5], now=now) == longer.record(
        short.session_ids(day)[5], now=now
    )


def test_the_plain_profile_has_no_reviews_and_only_successful_sessions() -> None:
    records = _records(
        Dataset(SimulatorConfig(start=START, days=2, sessions_per_day=60, profile="plain"))
    )
    assert len(records) == 120
    assert all(
        r["review"] is None and r["exit_code"] == 0 and r["status"] == "done" for r in records
    )


def _large(gw: Gateway) -> str:
    return find_plan(gw.dataset, lambda p, s: p.stream.kind == "large").id


def test_a_large_stream_is_served_whole_in_every_rendering() -> None:
    cfg = SimulatorConfig(
        start=START, days=1, sessions_per_day=10, large_streams=1, large_stream_bytes=3 * MIB + 5
    )
    with gateway_for(cfg) as (gw, client):
        session_id = _large(gw)
        full = {"expand": "event_stream,session_input"}
        raw = client.get(f"/api/sessions/{session_id}", params=full)
        record = raw.json()
        payload = b"".join(base64.b64decode(e[2]) for e in record["event_stream"])
        assert len(payload) == 3 * MIB + 5
        assert (
            record["event_size"]
            == record["metrics"]["event_size"]
            == len(orjson.dumps(record["event_stream"]))
        )
        assert record["metrics"].get("truncated") is None
        encoded = client.get(
            f"/api/sessions/{session_id}", params={**full, "event_stream": "base64"}
        ).json()
        assert base64.b64decode(encoded["event_stream"][0]) == payload
        text = client.get(
            f"/api/sessions/{session_id}", params={**full, "event_stream": "utf8"}
        ).json()
        assert text["event_stream"] == [payload.decode()] and text["event_size"] == len(payload)


def test_a_large_stream_body_is_produced_in_chunks_not_held_in_memory() -> None:
    cfg = SimulatorConfig(
        start=START, days=1, sessions_per_day=10, large_streams=1, large_stream_bytes=100 * MIB
    )
    ds = Dataset(cfg)
    plan = find_plan(ds, lambda p, s: p.stream.kind == "large")
    body = ds.get_body(plan, ds.now_us())
    assert isinstance(body, Body)
    assert body.length > 100 * MIB * 4 // 3
    sizes = [len(part) for _, part in zip(range(20), body.parts(), strict=False)]
    assert max(sizes) < 1 * MIB
    assert ds.record(plan.id)["metrics"]["truncated"] is True  # recording stopped near the limit


def test_a_100_mib_stream_arrives_whole_over_http() -> None:
    cfg = SimulatorConfig(
        start=START, days=1, sessions_per_day=5, large_streams=1, large_stream_bytes=100 * MIB
    )
    with serve(cfg) as gw, client_for(gw, timeout=60) as client:
        session_id = _large(gw)
        with client.stream(
            "GET", f"/api/sessions/{session_id}", params={"expand": "event_stream"}
        ) as response:
            received = sum(len(chunk) for chunk in response.iter_raw())
            assert received == int(response.headers["Content-Length"]) > 100 * MIB * 4 // 3
