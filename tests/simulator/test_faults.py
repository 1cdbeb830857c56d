"""Faults a proxy in front of the gateway produces, latency, and days that keep failing."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest

from hoop_sessions.simulator import SimulatorConfig

from .support import START, client_for, day_window, gateway_for

BASE = SimulatorConfig(seed=5, start=START, days=2, sessions_per_day=20)


def _always(kind: str, **more: object) -> SimulatorConfig:
    return SimulatorConfig(
        seed=5,
        start=START,
        days=2,
        sessions_per_day=20,
        fault_rate=1.0,
        fault_kinds=(kind,),
        **more,  # type: ignore[arg-type]
    )


def test_no_fault_is_injected_at_the_default_rate() -> None:
    with gateway_for(BASE) as (gw, client):
        for _ in range(50):
            assert client.get("/api/sessions").status_code == 200
        assert gw.stats.faults == {}


def test_a_429_carries_a_short_retry_after_and_the_fourth_attempt_succeeds() -> None:
    with gateway_for(_always("429")) as (gw, client):
        answers = [client.get("/api/sessions", params={"limit": 3}) for _ in range(5)]
        assert [a.status_code for a in answers] == [429, 429, 429, 200, 429]
        assert all(a.headers["Retry-After"] in ("0", "1") for a in answers[:3])
        assert gw.stats.faults == {"429": 4}
        assert gw.stats.statuses == {429: 4, 200: 1}


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [("500", "application/json"), ("502", "text/html"), ("503", "text/html"), ("504", "text/html")],
)
def test_server_errors_come_as_the_gateway_or_the_proxy_writes_them(
    kind: str, content_type: str
) -> None:
    with gateway_for(_always(kind)) as (_, client):
        response = client.get("/api/userinfo")
        assert response.status_code == int(kind)
        assert response.headers["Content-Type"].startswith(content_type)
        assert client.get("/api/userinfo").status_code == int(kind)  # the connection stays usable


def test_a_dropped_connection_closes_without_any_response() -> None:
    with (
        gateway_for(_always("drop")) as (_, client),
        pytest.raises(httpx.RemoteProtocolError, match="without sending"),
    ):
        client.get("/api/sessions")


def test_a_truncated_body_promises_more_bytes_than_it_sends() -> None:
    with (
        gateway_for(_always("truncate")) as (_, client),
        pytest.raises(httpx.RemoteProtocolError, match=r"complete message"),
    ):
        client.get("/api/sessions", params={"limit": 50})


def test_a_slow_response_outlasts_the_clients_timeout() -> None:
    with (
        gateway_for(_always("slow", slow_response_s=1.0)) as (gw, _),
        client_for(gw, timeout=0.3) as impatient,
    ):
        for _ in range(3):
            with pytest.raises(httpx.ReadTimeout):
                impatient.get("/api/userinfo")
        assert impatient.get("/api/userinfo").status_code == 200


def test_faults_are_a_function_of_the_seed_and_the_request_not_of_timing() -> None:
    def statuses(seed: int) -> list[int]:
        cfg = SimulatorConfig(
            seed=seed,
            start=START,
            days=2,
            sessions_per_day=20,
            fault_rate=0.5,
            fault_kinds=("429", "503"),
        )
        with gateway_for(cfg) as (_, client):
            return [
                client.get("/api/sessions", params={"offset": i % 7}).status_code for i in range(40)
            ]

    first = statuses(5)
    assert first == statuses(5)
    assert first != statuses(6)
    assert {429, 503, 200} <= set(first)


def test_retrying_always_gets_through_at_any_fault_rate() -> None:
    cfg = SimulatorConfig(
        seed=5,
        start=START,
        days=2,
        sessions_per_day=20,
        fault_rate=0.9,
        fault_kinds=("429", "500", "503"),
        max_consecutive_faults=3,
    )
    with gateway_for(cfg) as (_, client):
        for offset in range(10):
            attempts = [
                client.get("/api/sessions", params={"offset": offset}).status_code for _ in range(4)
            ]
            assert 200 in attempts


def test_a_failing_day_keeps_failing_for_lists_and_gets_and_other_days_work() -> None:
    bad = START + timedelta(days=1)
    with gateway_for(
        SimulatorConfig(
            seed=5, start=START, days=2, sessions_per_day=20, failing_days=frozenset({bad})
        )
    ) as (gw, client):
        good_day = client.get(
            "/api/sessions",
            params={"start_date": f"{START}T00:00:00Z", "end_date": f"{START}T23:59:59Z"},
        )
        assert good_day.status_code == 200
        for _ in range(5):
            failed = client.get("/api/sessions", params=day_window(bad))
            assert failed.status_code == 500 and failed.json() == {
                "message": "failed listing sessions (v2)"
            }
        session_id = gw.dataset.session_ids(bad)[0]
        assert client.get(f"/api/sessions/{session_id}").status_code == 500
        assert gw.stats.faults == {"permanent": 6}


def test_a_failing_session_keeps_failing_and_its_neighbours_work() -> None:
    with gateway_for(BASE) as (gw, _):
        first, second = gw.dataset.session_ids(START)[:2]
    cfg = SimulatorConfig(
        seed=5, start=START, days=2, sessions_per_day=20, failing_sessions=frozenset({first})
    )
    with gateway_for(cfg) as (_, client):
        assert [client.get(f"/api/sessions/{first}").status_code for _ in range(4)] == [500] * 4
        assert client.get(f"/api/sessions/{second}").status_code == 200


def test_latency_delays_every_response() -> None:
    with gateway_for(SimulatorConfig(start=START, days=1, sessions_per_day=5, latency_ms=150)) as (
        _,
        client,
    ):
        began = time.perf_counter()
        assert client.get("/api/userinfo").status_code == 200
        assert client.get("/api/sessions").status_code == 200
        assert time.perf_counter() - began >= 0.3


def test_stats_count_requests_per_route() -> None:
    with gateway_for(BASE) as (gw, client):
        session_id = gw.dataset.session_ids(START)[0]
        client.get("/api/userinfo")
        client.get("/api/sessions")
        client.get(f"/api/sessions/{session_id}")
        client.get(f"/api/sessions/{session_id}")
        client.get("/nothing")
        assert gw.stats.requests == {"userinfo": 1, "list": 1, "get": 2, "other": 1}
        assert gw.stats.total == 5
        gw.reset_stats()
        assert gw.stats.total == 0
