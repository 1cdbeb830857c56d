"""How a crowded second is split by list filters, against a small gateway that serves hoop's list
semantics (the simulator plants no review status it does not know)."""

from __future__ import annotations

import asyncio
import functools
import re
import uuid
from datetime import UTC, date, datetime
from urllib.parse import parse_qs

import httpcore
import orjson

from hoop_sessions.config import Secret, Settings
from hoop_sessions.extract.client import HoopClient
from hoop_sessions.extract.day import extract_day
from hoop_sessions.extract.listing import READABLE_ROWS, list_day
from hoop_sessions.extract.raw import RawDay

DAY = date(2026, 11, 1)
SECOND = "2026-11-01T12:00:00"


def _like(pattern: str, value: str) -> bool:
    """SQL LIKE, case-sensitive, as Postgres matches hoop's list filters."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


class ListGateway:
    """GET /api/sessions over rows of (id, start_date, review status or None, connection type).

    hoop: gateway/models/session.go — review.status and type are LIKE against COALESCE(.., ''),
    count=exact counts every match, count=capped stops at 10,000, offset above 10,000 is a 422.
    """

    def __init__(self, rows: list[tuple[str, str, str | None, str]]) -> None:
        parsed = [(r[0], datetime.fromisoformat(r[1]), r[2], r[3]) for r in rows]
        self.rows = sorted(parsed, key=lambda r: (r[1], r[0]), reverse=True)
        self.queries: list[dict[str, str]] = []
        self.by_id = {r[0]: r for r in rows}

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        target = request.url.target.decode()
        path, _, query = target.partition("?")
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if path.startswith("/api/sessions/"):
            sid = path.removeprefix("/api/sessions/")
            row = self.by_id[sid]
            return httpcore.Response(
                200, content=orjson.dumps({"id": sid, "start_date": row[1], "end_date": None})
            )
        self.queries.append(params)
        offset, limit = int(params.get("offset", "0")), min(int(params.get("limit", "20")), 100)
        if offset > 10_000:
            return httpcore.Response(422, content=b'{"message": "offset too deep"}')
        match = self._matching(
            params["start_date"],
            params["end_date"],
            params.get("review.status"),
            params.get("type"),
        )
        page = match[offset : offset + limit + 1]
        count = params.get("count", "capped")
        total = (
            len(match)
            if count == "exact"
            else min(len(match), 10_000)
            if count == "capped"
            else None
        )
        body = {
            "data": [
                {
                    "id": r[0],
                    "start_date": r[1].isoformat().replace("+00:00", "Z"),
                    "review": None if r[2] is None else {"status": r[2]},
                    "type": r[3],
                }
                for r in page[:limit]
            ],
            "total": total,
            "total_is_capped": count == "capped" and len(match) > 10_000,
            "has_next_page": len(page) > limit,
        }
        return httpcore.Response(200, content=orjson.dumps(body))

    @functools.cache
    def _matching(
        self, start: str, end: str, status: str | None, kind: str | None
    ) -> list[tuple[str, datetime, str | None, str]]:
        low, high = datetime.fromisoformat(start), datetime.fromisoformat(end)
        return [
            r
            for r in self.rows
            if low <= r[1] <= high
            and (status is None or _like(status, r[2] or ""))
            and (kind is None or _like(kind, r[3]))
        ]

    async def aclose(self) -> None:
        pass


def _rows(
    count: int, status: str | None, kind: str, seed: int
) -> list[tuple[str, str, str | None, str]]:
    return [
        (
            str(uuid.UUID(int=(seed << 64) + i, version=4)),
            f"{SECOND}.{i % 999_999 + 1:06d}Z",
            status,
            kind,
        )
        for i in range(count)
    ]


def _list(gateway: ListGateway):
    settings = Settings(api_url="http://127.0.0.1:9", api_token=Secret("t"), retry_attempts=1)

    async def go():
        async with HoopClient(settings, transport=gateway) as client:
            return await list_day(client, DAY)

    return asyncio.run(go())


def test_a_second_with_an_unknown_review_status_is_completed_by_splitting_on_type():
    rows = _rows(9_900, None, "database", 1) + _rows(300, "ARCHIVED", "application", 2)
    gateway = ListGateway(rows)
    _, found = _list(gateway)
    assert set(found.by_id) == {r[0] for r in rows}
    assert found.gaps == []
    assert any(q.get("type") == "application" for q in gateway.queries)
    assert any(q.get("review.status") == "" for q in gateway.queries), (
        "an empty status is sent as a filter"
    )


def test_rows_no_filter_reaches_are_recorded_as_a_gap_and_the_rest_is_listed():
    outside = (str(uuid.UUID(int=99, version=4)), "2026-11-01T08:00:00.5Z", None, "custom")
    rows = [*_rows(10_150, "ARCHIVED", "database", 3), outside]
    _, found = _list(ListGateway(rows))
    assert len(found.by_id) == READABLE_ROWS + 1
    [gap] = found.gaps
    assert gap["rows_unreached"] == 10_150 - READABLE_ROWS
    assert datetime.fromisoformat(gap["window_start"]) <= datetime(2026, 11, 1, 12, tzinfo=UTC)
    assert datetime.fromisoformat(gap["window_end"]) >= datetime(2026, 11, 1, 12, tzinfo=UTC)
    assert "review.status or type" in gap["reason"]


def test_a_gap_is_carried_in_the_days_raw_file_header_and_result(tmp_path):
    rows = _rows(10_150, "ARCHIVED", "database", 4)
    settings = Settings(api_url="http://127.0.0.1:9", api_token=Secret("t"), retry_attempts=1)

    async def go():
        async with HoopClient(settings, transport=ListGateway(rows)) as client:
            return await extract_day(client, raw_dir=tmp_path, day=DAY, concurrency=4, principal={})

    result = asyncio.run(go())
    [gap] = result.gaps
    assert gap["rows_unreached"] == 50
    assert RawDay(tmp_path, DAY).header["gaps"] == [gap]
    assert result.sessions_fetched == READABLE_ROWS
