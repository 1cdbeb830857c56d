"""Helpers for the simulator's contract tests.

Read-only tests share the session gateway of conftest.py; a test that moves the clock or needs
other knobs starts its own with `gateway_for(cfg)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

import httpx

from hoop_sessions.simulator import Dataset, Gateway, SimulatorConfig, serve
from hoop_sessions.simulator.lifecycle import SessionState
from hoop_sessions.simulator.plan import SessionPlan

START = date(2026, 11, 1)
SMALL = SimulatorConfig(seed=7, start=START, days=3, sessions_per_day=80)
# Enough sessions that every kind of record and stream occurs.
RICH = SimulatorConfig(seed=7, start=START, days=7, sessions_per_day=200)


@contextmanager
def gateway_for(cfg: SimulatorConfig) -> Iterator[tuple[Gateway, httpx.Client]]:
    with serve(cfg) as gw, client_for(gw) as client:
        yield gw, client


def client_for(gw: Gateway, token: str | None = None, *, timeout: float = 10) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token or gw.token}"}
    return httpx.Client(base_url=gw.url, headers=headers, timeout=timeout)


def find_plan(
    ds: Dataset, predicate: Callable[[SessionPlan, SessionState], bool], now_us: int | None = None
) -> SessionPlan:
    """The first existing session (oldest day first, list order) that satisfies `predicate`."""
    now_us = ds.now_us() if now_us is None else now_us
    for day in ds.days():
        for plan in ds.day(day).plans:
            if plan.start_us <= now_us and predicate(plan, ds.state(plan, now_us)):
                return plan
    raise LookupError("no session of the simulated data matches")


def day_window(day: date) -> dict[str, str]:
    """The recommended window for one UTC day: [D 00:00:00Z, D+1 00:00:00Z]."""
    following = day + timedelta(days=1)
    return {"start_date": f"{day}T00:00:00Z", "end_date": f"{following}T00:00:00Z"}


def list_all(client: httpx.Client, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every row of a list query, paged by offset with limit 100."""
    rows: list[dict[str, Any]] = []
    while True:
        response = client.get("/api/sessions", params={**params, "limit": 100, "offset": len(rows)})
        assert response.status_code == 200, response.text
        page = response.json()
        rows.extend(page["data"])
        if not page["has_next_page"]:
            return rows


def second_window(start_date: str) -> dict[str, str]:
    """A list window [S, S+1s] around the whole second S a session started in."""
    second = datetime.fromisoformat(start_date.replace("Z", "+00:00")).replace(microsecond=0)
    bounds = (second, second + timedelta(seconds=1))
    return dict(
        zip(
            ("start_date", "end_date"),
            (b.strftime("%Y-%m-%dT%H:%M:%SZ") for b in bounds),
            strict=True,
        )
    )
