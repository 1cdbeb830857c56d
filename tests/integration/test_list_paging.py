"""Paging one day window: the later pages are asked for together once the first page gives the
total, and a page that does not hold the rows its offset promised makes the client page one at a
time from there. Real HTTP to a scripted gateway on loopback."""

from __future__ import annotations

import asyncio
import threading
from datetime import date
from pathlib import Path

import pytest

from hoop_sessions.config import Secret, Settings
from hoop_sessions.extract.client import HoopClient
from hoop_sessions.extract.listing import list_day
from tests.records import session_record
from tests.reliability.hostile import (
    HostileGateway,
    Reply,
    Request,
    error_reply,
    list_row,
    page_reply,
    paged,
)

DAY = date(2026, 11, 1)
ROWS = 450  # five pages of 100


def rows() -> list[dict[str, object]]:
    """List rows in hoop's order (start_date DESC, id DESC)."""
    records = [
        session_record(
            id=f"0b9f6a3c-1111-4222-8333-{n:012d}",
            start_date=f"{DAY}T{n // 60 % 24:02d}:{n % 60:02d}:00.5Z",
        )
        for n in range(ROWS)
    ]
    return [
        list_row(r) for r in sorted(records, key=lambda r: (r["start_date"], r["id"]), reverse=True)
    ]


def settings(gw: HostileGateway, data_dir: Path, concurrency: int = 8) -> Settings:
    return Settings(
        api_url=gw.url,
        api_token=Secret(gw.token),
        data_dir=data_dir,
        concurrency=concurrency,
        retry_attempts=1,
        timeout_seconds=30.0,
    )


def listed_ids(gw: HostileGateway, data_dir: Path, concurrency: int = 8) -> list[str]:
    async def run() -> list[str]:
        async with HoopClient(settings(gw, data_dir, concurrency)) as client:
            windows, _ = await list_day(client, DAY)
        return [sid for w in windows for sid in w.session_ids]

    return asyncio.run(run())


def offsets(gw: HostileGateway) -> list[int]:
    return [r.offset for r in gw.requests if r.path == "/api/sessions"]


@pytest.fixture
def gw():
    with HostileGateway() as gateway:
        yield gateway


def test_the_later_pages_are_asked_for_together_and_read_once(gw, tmp_path):
    all_rows = rows()
    # Each later page is answered only once all four are being asked for at the same time: a
    # client that waits for one page before asking for the next breaks the barrier.
    together = threading.Barrier(4, timeout=20)

    def route(request: Request) -> Reply:
        if request.offset > 0:
            try:
                together.wait()
            except threading.BrokenBarrierError:
                return error_reply(400, "later pages were not asked for together")
        return pages(request)

    pages = paged(all_rows)
    gw.list_for_day[DAY] = route
    ids = listed_ids(gw, tmp_path)
    assert sorted(ids) == sorted(r["id"] for r in all_rows)
    assert len(ids) == len(set(ids))
    assert sorted(offsets(gw)) == [0, 100, 200, 300, 400]


def test_with_one_request_at_a_time_the_pages_still_come_in_order(gw, tmp_path):
    all_rows = rows()
    gw.list_for_day[DAY] = paged(all_rows)
    ids = listed_ids(gw, tmp_path, concurrency=1)
    assert sorted(ids) == sorted(r["id"] for r in all_rows)
    assert offsets(gw) == [0, 100, 200, 300, 400]


def test_a_short_page_midway_makes_the_client_page_one_at_a_time_from_there(gw, tmp_path):
    all_rows = rows()

    def route(request: Request) -> Reply:
        # The page at offset 100 holds 60 rows and says more follow: the pages fetched ahead at
        # 200, 300 and 400 no longer start where the next page does (160).
        size = 60 if request.offset == 100 else request.limit
        chunk = all_rows[request.offset : request.offset + size]
        total = len(all_rows) if request.query.get("count") == "capped" else None
        return page_reply(chunk, has_next_page=request.offset + size < len(all_rows), total=total)

    gw.list_for_day[DAY] = route
    ids = listed_ids(gw, tmp_path)
    assert sorted(ids) == sorted(r["id"] for r in all_rows)
    asked = offsets(gw)
    # After the short page: 160, 260, 360 one at a time, ending with the page at 360 that holds
    # the last 90 rows. The pages fetched ahead before the short one came back (200, 300, 400) may
    # reach the gateway in any order, before or among those: they are concurrent.
    after = [o for o in asked if o not in (0, 100, 200, 300, 400)]
    assert after == [160, 260, 360], asked
    assert set(asked) == {0, 100, 200, 300, 400, 160, 260, 360}, asked


def test_a_total_larger_than_the_rows_ends_at_the_first_empty_page(gw, tmp_path):
    all_rows = rows()[:250]

    def route(request: Request) -> Reply:
        chunk = all_rows[request.offset : request.offset + request.limit]
        # Claims 900 rows on the first page, and says more follow until the rows run out.
        return page_reply(
            chunk,
            has_next_page=bool(chunk) and request.offset + 100 < 900,
            total=900 if request.query.get("count") == "capped" else None,
        )

    gw.list_for_day[DAY] = route
    ids = listed_ids(gw, tmp_path)
    assert sorted(ids) == sorted(r["id"] for r in all_rows)
    assert max(offsets(gw)) <= 800  # never past the total the gateway reported
