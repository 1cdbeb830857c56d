"""The floor: the least a client must do to read the same data, and nothing more.

It sends the requests the sync sends (the userinfo preflight, list pages of each UTC day window
with ``limit=100`` and offset paging, the pages after the first asked for together as the sync
does, then every session of the day with
``expand=event_stream,session_input``), over the same kind of connection pool (one
``httpx.AsyncClient``, keep-alive, concurrency 8), reads every body to the end and throws it away.
The only parsing it does is of list pages, to learn the ids. Its wall time is what the network and
the gateway cost; the sync's excess over it is what the sync itself costs.

``--transport lanes`` sends the same requests through the sync's own HTTP layer
(``hoop_sessions.extract.transport.Http``: one keep-alive connection per request in flight) instead of
httpx's pool: the floor of that layer, so the sync's excess over it is its work beyond HTTP.

Run as ``python -m benchmarks.floor --start D --end D`` with ``HOOP_API_URL`` and ``HOOP_API_TOKEN``
set; it prints one JSON line with the number of requests, sessions and bytes read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import date, timedelta
from typing import Any

import httpx
import orjson

from hoop_sessions.extract.transport import Http

PAGE_LIMIT = 100
GET_PARAMS = {"expand": "event_stream,session_input"}


async def _list_day(http: Any, day: date, counts: dict[str, int], concurrency: int) -> list[str]:
    """Ids of the sessions of ``day``: the window [D 00:00:00Z, D+1 00:00:00Z], rows of D only.

    As the sync pages: the first page asks for the total, then the later pages are asked for
    ``concurrency`` at a time; one page at a time only when the total is not known.
    """
    prefix = day.isoformat()
    params = {
        "start_date": f"{prefix}T00:00:00Z",
        "end_date": f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z",
        "limit": str(PAGE_LIMIT),
    }
    ids: dict[str, None] = {}

    async def page(offset: int, count: str = "none") -> dict[str, Any]:
        response = await http.get(
            "/api/sessions", params={**params, "offset": str(offset), "count": count}
        )
        response.raise_for_status()
        counts["requests"] += 1
        counts["bytes"] += len(response.content)
        doc: dict[str, Any] = orjson.loads(response.content)
        for row in doc["data"]:
            # Times are UTC with a Z: the date prefix says the day; a row exactly on D+1 00:00:00
            # belongs to the next day, as in the sync.
            if row["start_date"].startswith(prefix):
                ids[row["id"]] = None
        return doc

    doc = await page(0, "capped")
    rows = doc["data"]
    total = doc.get("total")
    if isinstance(total, int) and len(rows) == PAGE_LIMIT and doc.get("has_next_page"):
        slots = asyncio.Semaphore(concurrency)

        async def ahead(offset: int) -> dict[str, Any]:
            async with slots:
                return await page(offset)

        await asyncio.gather(*(ahead(o) for o in range(PAGE_LIMIT, total, PAGE_LIMIT)))
        return list(ids)
    offset = 0
    while doc.get("has_next_page") and rows:
        offset += len(rows)
        doc = await page(offset)
        rows = doc["data"]
    return list(ids)


async def _get_all(http: Any, ids: list[str], concurrency: int, counts: dict[str, int]) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for sid in ids:
        queue.put_nowait(sid)

    async def worker() -> None:
        while True:
            try:
                sid = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            response = await http.get(f"/api/sessions/{sid}", params=GET_PARAMS)
            response.raise_for_status()
            counts["requests"] += 1
            counts["sessions"] += 1
            counts["bytes"] += len(response.content)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class _LanesClient:
    """The sync's HTTP layer behind the two calls the floor makes of httpx."""

    class _Reply:
        def __init__(self, status: int, content: bytes) -> None:
            self.status_code, self.content = status, content

        def raise_for_status(self) -> None:
            if self.status_code != 200:
                raise RuntimeError(f"HTTP {self.status_code}")

    def __init__(self, http: Http) -> None:
        self._http = http

    async def get(self, path: str, params: dict[str, str] | None = None) -> _LanesClient._Reply:
        answer = await self._http.get(path, params or {})
        return self._Reply(answer.status, answer.body)


async def run_lanes(
    *, url: str, token: str, start: date, end: date, concurrency: int
) -> dict[str, int]:
    counts = {"requests": 0, "sessions": 0, "bytes": 0}
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    async with Http(url, headers, lanes=concurrency + 2, timeout=60.0, connect_timeout=10.0) as raw:
        http: Any = _LanesClient(raw)
        await _walk(http, start, end, concurrency, counts)
    return counts


async def _walk(
    http: Any, start: date, end: date, concurrency: int, counts: dict[str, int]
) -> None:
    response = await http.get("/api/userinfo")
    response.raise_for_status()
    counts["requests"] += 1
    day = start
    while day <= end:
        ids = await _list_day(http, day, counts, concurrency)
        await _get_all(http, ids, concurrency, counts)
        day += timedelta(days=1)


async def run(*, url: str, token: str, start: date, end: date, concurrency: int) -> dict[str, int]:
    counts = {"requests": 0, "sessions": 0, "bytes": 0}
    # The same pool the sync's client uses: concurrency + 2 keep-alive connections.
    limits = httpx.Limits(
        max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2
    )
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=60.0
    ) as http:
        await _walk(http, start, end, concurrency, counts)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # The gateway and token come from the environment, as for the sync: no token in `ps`.
    parser.add_argument("--url", default=os.environ.get("HOOP_API_URL"))
    parser.add_argument("--start", required=True, type=date.fromisoformat)
    parser.add_argument("--end", required=True, type=date.fromisoformat)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--transport",
        choices=("httpx", "lanes"),
        default="httpx",
        help="httpx's pooled AsyncClient (default), or the sync's own HTTP layer",
    )
    args = parser.parse_args(argv)
    token = os.environ.get("HOOP_API_TOKEN")
    if not args.url or not token:
        parser.error("set HOOP_API_URL and HOOP_API_TOKEN (or pass --url)")
    runner = run_lanes if args.transport == "lanes" else run
    counts = asyncio.run(
        runner(
            url=args.url, token=token, start=args.start, end=args.end, concurrency=args.concurrency
        )
    )
    sys.stdout.write(orjson.dumps(counts).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
