"""The clock: sessions appear, run, finish; reviews get decided; responses are reproducible."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from hoop_sessions.simulator import Dataset, Gateway, SimulatorConfig, serve
from hoop_sessions.simulator.timefmt import from_us

from .support import START, client_for, day_window, find_plan, list_all

CFG = SimulatorConfig(seed=11, start=START, days=3, sessions_per_day=150)
FULL = {"expand": "event_stream,session_input"}


@pytest.fixture
def gw() -> Iterator[Gateway]:
    with serve(CFG) as gateway:
        yield gateway


def _get(client: httpx.Client, session_id: str) -> dict[str, Any]:
    response = client.get(f"/api/sessions/{session_id}", params=FULL)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_sessions_that_start_after_now_do_not_exist_yet(gw: Gateway) -> None:
    noon = from_us(gw.dataset.now_us()).replace(
        year=2026, month=11, day=2, hour=12, minute=0, second=0
    )
    gw.set_now(noon)
    with client_for(gw) as client:
        rows = list_all(client, day_window(START + timedelta(days=1)))
        later = [
            p for p in gw.dataset.day(START + timedelta(days=1)).plans if from_us(p.start_us) > noon
        ]
        assert later and all(r["start_date"] < "2026-11-02T12" for r in rows)
        assert len(rows) == 150 - len(later)
        assert client.get(f"/api/sessions/{later[0].id}").status_code == 404


def test_a_running_session_is_open_and_its_stream_grows_by_flushes_until_it_ends(
    gw: Gateway,
) -> None:
    plan = find_plan(
        gw.dataset,
        lambda p, s: (
            p.review is None
            and p.stream.kind == "shell"
            and p.end_us is not None
            and p.connect_us is not None
            and p.end_us - p.connect_us > 15 * 60 * 10**6
            and len(gw.dataset.events(p)) >= 6
        ),
    )
    assert plan.connect_us is not None and plan.end_us is not None
    every_elapsed = [e.elapsed_us / 1e6 for e in gw.dataset.events(plan)]
    streams = []
    with client_for(gw) as client:
        for fraction in (0.3, 0.7):
            running_us = int((plan.end_us - plan.connect_us) * fraction)
            gw.set_now(from_us(plan.connect_us + running_us))
            record = _get(client, plan.id)
            assert record["status"] == "open"
            assert (
                record["end_date"] is None
                and record["exit_code"] is None
                and record["metrics"] is None
            )
            assert record["event_size"] == 0
            # Stored every 50 seconds: the stream holds what happened up to the last flush.
            flushed = running_us // 10**6 // 50 * 50
            assert len(record["event_stream"]) == sum(t <= flushed for t in every_elapsed)
            streams.append(record["event_stream"])
        gw.set_now(from_us(plan.end_us))
        done = _get(client, plan.id)
    assert done["status"] == "done" and done["end_date"] is not None and done["metrics"] is not None
    early, late = streams
    assert early == late[: len(early)] and late == done["event_stream"][: len(late)]
    assert len(done["event_stream"]) == len(every_elapsed)


def test_a_review_is_pending_until_its_decision_and_then_decided(gw: Gateway) -> None:
    plan = find_plan(
        gw.dataset,
        lambda p, s: (
            p.review is not None
            and p.review.type == "jit"
            and s.review_status == "APPROVED"
            and p.connect_us is not None
            and p.stream.kind in ("shell", "pgwire", "rdp")
        ),
    )
    review = plan.review
    assert review is not None and review.decided_us is not None and plan.connect_us is not None
    with client_for(gw) as client:
        gw.set_now(from_us(review.decided_us - 1))
        pending = _get(client, plan.id)
        gw.set_now(from_us(review.decided_us))
        approved = _get(client, plan.id)
        gw.set_now(from_us(plan.connect_us))
        connected = _get(client, plan.id)
    assert pending["review"]["status"] == "PENDING" and pending["review"]["revoke_at"] is None
    assert pending["status"] == "open" and "event_stream" not in pending
    # Every group but the last has approved already; the review waits for the last one.
    assert pending["review"]["review_groups_data"][-1]["status"] == "PENDING"
    assert pending["review"]["review_groups_data"][-1]["reviewed_by"] is None
    assert approved["review"]["status"] == "APPROVED" and approved["status"] == "ready"
    assert approved["review"]["revoke_at"] is not None
    assert connected["status"] == "open" and connected["event_stream"] == []


def test_a_one_time_review_goes_approved_processing_executed(gw: Gateway) -> None:
    plan = find_plan(
        gw.dataset,
        lambda p, s: (
            p.review is not None and p.review.type == "onetime" and s.review_status == "EXECUTED"
        ),
    )
    assert plan.review is not None and plan.review.decided_us and plan.connect_us and plan.end_us
    seen = []
    with client_for(gw) as client:
        for moment in (plan.review.decided_us, plan.connect_us, plan.end_us):
            gw.set_now(from_us(moment))
            record = _get(client, plan.id)
            seen.append((record["review"]["status"], record["status"]))
    assert seen == [("APPROVED", "ready"), ("PROCESSING", "open"), ("EXECUTED", "done")]


def test_the_same_config_and_clock_give_byte_identical_responses() -> None:
    paths = ["/api/sessions?limit=100", "/api/userinfo"]
    bodies = []
    for _ in range(2):
        with serve(CFG) as gateway, client_for(gateway) as client:
            ids = [
                r["id"] for r in client.get("/api/sessions", params={"limit": 100}).json()["data"]
            ]
            bodies.append(
                [client.get(p).content for p in paths]
                + [client.get(f"/api/sessions/{i}", params=FULL).content for i in ids]
            )
    assert bodies[0] == bodies[1]
    with (
        serve(SimulatorConfig(seed=12, start=START, days=3, sessions_per_day=150)) as other,
        client_for(other) as client,
    ):
        assert client.get(paths[0]).content != bodies[0][0]


def test_the_dataset_renders_what_the_server_serves_at_any_clock(gw: Gateway) -> None:
    dataset = Dataset(CFG)
    moment = from_us(gw.dataset.now_us()) - timedelta(days=1, hours=7)
    gw.set_now(moment)
    with client_for(gw) as client:
        for session_id in dataset.session_ids(START + timedelta(days=1), now=moment)[:25]:
            assert _get(client, session_id) == dataset.record(session_id, now=moment)


def test_sessions_after_the_clock_are_unknown_to_the_dataset_too() -> None:
    dataset = Dataset(CFG)
    last = dataset.days()[-1]
    early = from_us(dataset.now_us()) - timedelta(days=2, microseconds=1)
    assert dataset.session_ids(last, now=early) == []
    with pytest.raises(KeyError):
        dataset.record(dataset.session_ids(last)[0], now=early)
