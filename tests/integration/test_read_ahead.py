"""Reading several days at once: a sync reads the days ahead together over its HOOP_CONCURRENCY
connections, never has more requests than that in flight at the gateway, gives every freed
connection to the earliest day that has a request waiting, and loads each session of each day once.
Real HTTP to a scripted gateway on loopback, which counts what it is asked at the same time."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import duckdb
import pytest

from hoop_sessions.extract.transport import Http
from hoop_sessions.sync.run import RunResult, sync_days
from tests.conftest import FIRST_DAY, NOW, settings_for
from tests.records import session_record
from tests.reliability.hostile import HostileGateway, Reply, Request, error_reply

DELAY = 0.02  # seconds each answer waits at the gateway: enough for requests to overlap


def day_records(day: date, count: int, first: int) -> list[dict[str, Any]]:
    return [
        session_record(
            id=f"0b9f6a3c-1111-4222-8333-{first + n:012d}",
            start_date=f"{day}T{n % 24:02d}:{n % 60:02d}:00.25Z",
            end_date=f"{day}T{n % 24:02d}:{n % 60:02d}:30Z",
            review=None,
        )
        for n in range(count)
    ]


class MeteredGateway(HostileGateway):
    """A gateway whose every answer waits ``delay`` seconds, counting the requests it holds at once.

    A request counts from when it has been read until just before its answer is written, so the
    count never exceeds the connections the client has busy. ``hold`` may make a route wait
    further (it runs while the request counts).
    """

    def __init__(self, delay: float = DELAY) -> None:
        super().__init__()
        self.delay = delay
        self.hold: Callable[[Request], Reply | None] = lambda _request: None
        self.in_flight: list[date | None] = []
        self.peak = 0
        self.peak_days = 0  # most distinct days with a request in flight at once
        self._meter = threading.Lock()

    def serve_days(self, sizes: dict[date, int]) -> None:
        first = 0
        for day, count in sizes.items():
            self.add_day(day, day_records(day, count, first))
            first += count

    def day_of(self, request: Request) -> date | None:
        if request.path == "/api/sessions":
            return request.window_day
        record = self.records.get(request.path.removeprefix("/api/sessions/"))
        return date.fromisoformat(record["start_date"][:10]) if record else None

    def routed(self, request: Request) -> Reply:
        day = self.day_of(request)
        with self._meter:
            self.in_flight.append(day)
            self.peak = max(self.peak, len(self.in_flight))
            self.peak_days = max(self.peak_days, len({d for d in self.in_flight if d is not None}))
        try:
            held = self.hold(request)
            self.stopping.wait(self.delay)
            return held if held is not None else super().routed(request)
        finally:
            with self._meter:
                self.in_flight.remove(day)


@pytest.fixture
def gw() -> Iterator[MeteredGateway]:
    with MeteredGateway() as gateway:
        yield gateway


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch, gw: MeteredGateway) -> list[date | None]:
    """The day of every request in the order the client sent it (None for userinfo).

    Taken in the client, when a request has its connection: the gateway's own record is in the
    order its threads parsed the requests, which on several connections is not the client's order.
    """
    order: list[date | None] = []
    exchange = Http._exchange

    async def spy(self: Http, lane: Any, request: Any) -> Any:
        path, _, query = request.url.target.decode("ascii").partition("?")
        order.append(gw.day_of(Request(path, {k: v[0] for k, v in parse_qs(query).items()}, {})))
        return await exchange(self, lane, request)

    monkeypatch.setattr(Http, "_exchange", spy)
    return order


def days_from(first: date, count: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(count)]


def sync(gw: MeteredGateway, data_dir: Path, days: list[date], concurrency: int) -> RunResult:
    settings = settings_for(gw, data_dir, concurrency=concurrency, retry_attempts=1)
    return sync_days(settings, days, now=NOW)


def loaded_per_day(data_dir: Path) -> dict[date, tuple[int, int]]:
    """(rows, distinct session ids) of the sessions table, by day."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT start_day, count(*), count(DISTINCT session_id) FROM sessions"
            " GROUP BY start_day"
        ).fetchall()
    return {day: (n, distinct) for day, n, distinct in rows}


def test_days_are_read_together_and_every_session_of_every_day_loads_once(gw, tmp_path):
    days = days_from(FIRST_DAY, 4)
    sizes = dict(zip(days, [5, 7, 4, 6], strict=True))
    gw.serve_days(sizes)
    # The list of the first day is answered only once a request of a later day has reached the
    # gateway, and the other way round: a client that reads one day after another cannot pass.
    together = threading.Barrier(2, timeout=5)  # within the client's timeout (10 s)

    def hold(request: Request) -> Reply | None:
        if request.path == "/api/sessions" and request.window_day in days[:2]:
            try:
                together.wait()
            except threading.BrokenBarrierError:
                return error_reply(400, "the first two days were not read at the same time")
        return None

    gw.hold = hold
    result = sync(gw, tmp_path, days, concurrency=2)

    assert result.ok, result.failed
    assert [d.day for d in result.days] == days
    assert gw.peak_days == 2
    # Every session was asked for once, and loaded once into its day.
    gets = [r.path for r in gw.requests if r.path.startswith("/api/sessions/")]
    assert sorted(gets) == sorted(f"/api/sessions/{sid}" for sid in gw.records)
    assert loaded_per_day(tmp_path) == {day: (n, n) for day, n in sizes.items()}


@pytest.mark.parametrize("concurrency", [2, 3])
def test_the_gateway_never_has_more_requests_in_flight_than_hoop_concurrency(
    gw, tmp_path, concurrency
):
    days = days_from(FIRST_DAY, 5)
    sizes = dict(zip(days, [8, 6, 9, 5, 7], strict=True))
    gw.serve_days(sizes)

    result = sync(gw, tmp_path, days, concurrency=concurrency)

    assert result.ok, result.failed
    # Several days were read at once, and together they held every connection and no more.
    assert gw.peak_days >= 2
    assert gw.peak == concurrency
    assert loaded_per_day(tmp_path) == {day: (n, n) for day, n in sizes.items()}


def test_with_one_connection_a_day_is_asked_for_nothing_until_the_day_two_before_it_is_done(
    gw, tmp_path, sent
):
    days = days_from(FIRST_DAY, 4)
    sizes = dict(zip(days, [4, 5, 3, 6], strict=True))
    gw.serve_days(sizes)

    result = sync(gw, tmp_path, days, concurrency=1)

    assert result.ok, result.failed
    assert sent[0] is None  # userinfo
    order = sent[1:]
    assert len(order) == len(days) + sum(sizes.values())
    # The first day's list takes the one connection; the lists of the other three wait for it
    # from the start. Each time it is freed, the earliest day with a request waiting takes it. A
    # day has one request at a time (HOOP_CONCURRENCY) and queues its next only once the previous
    # has handed the connection on, so the two earliest days not yet done take turns, and a later
    # day gets nothing while either has requests left. First come, first served would send the
    # list of every day before the first get of any.
    assert order[:2] == days[:2]
    for earlier, later in zip(days, days[2:], strict=False):
        last = max(i for i, day in enumerate(order) if day == earlier)
        first = min(i for i, day in enumerate(order) if day == later)
        assert last < first, (
            f"day {later.day} was asked for at {first}, before day {earlier.day} was done "
            f"({last}): {[d.day for d in order]}"
        )
