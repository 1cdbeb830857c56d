"""`legacy_gateway=True`: the list endpoint of gateways before 1.144."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hoop_sessions.simulator import SimulatorConfig

from .support import START, day_window, gateway_for

LEGACY = SimulatorConfig(seed=7, start=START, days=1, sessions_per_day=40, legacy_gateway=True)


@pytest.fixture(scope="module")
def legacy() -> Iterator[httpx.Client]:
    with gateway_for(LEGACY) as (_, client):
        yield client


def test_the_legacy_list_has_an_exact_total_and_no_capping_flag(legacy: httpx.Client) -> None:
    page = legacy.get("/api/sessions", params={"limit": 5, "count": "none"}).json()
    assert list(page) == ["data", "total", "has_next_page"]
    assert page["total"] == 40  # count is not an option yet: always exact


def test_legacy_has_next_page_means_the_page_was_full(legacy: httpx.Client) -> None:
    window = day_window(START)
    total = legacy.get("/api/sessions", params=window).json()["total"]
    last_full = legacy.get(
        "/api/sessions", params={**window, "limit": 10, "offset": total - 10}
    ).json()
    assert len(last_full["data"]) == 10 and last_full["has_next_page"] is True
    beyond = legacy.get("/api/sessions", params={**window, "limit": 10, "offset": total}).json()
    assert beyond["data"] == [] and beyond["has_next_page"] is False


def test_a_bad_legacy_limit_silently_becomes_zero(legacy: httpx.Client) -> None:
    page = legacy.get("/api/sessions", params={"limit": "abc"}).json()
    assert page["data"] == []
    assert page["has_next_page"] is True  # an empty page of a zero limit is "full"


def test_the_legacy_gateway_has_no_offset_cap(legacy: httpx.Client) -> None:
    response = legacy.get("/api/sessions", params={"offset": 20_000})
    assert response.status_code == 200
    assert response.json()["data"] == []


def test_a_negative_legacy_offset_is_a_database_error(legacy: httpx.Client) -> None:
    response = legacy.get("/api/sessions", params={"offset": -1})
    assert response.status_code == 500
    assert response.json() == {"message": "failed listing sessions (v2)"}


def test_a_bad_legacy_date_has_the_older_message(legacy: httpx.Client) -> None:
    response = legacy.get("/api/sessions", params={"start_date": "2026-11-01"})
    assert response.status_code == 422
    assert response.json() == {
        "message": "failed listing sessions, start_date or end_date in wrong format"
    }
