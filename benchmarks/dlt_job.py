"""The same job written as a competent dlt user would: rest_api source into DuckDB.

Runs in its own virtualenv (``benchmarks/.dlt-venv``, made by ``benchmarks.dlt_env``), so it
imports nothing of this project. Configuration comes from the environment, as for the sync:
``HOOP_API_URL``, ``HOOP_API_TOKEN``, ``HOOP_DATA_DIR`` (the pipeline's working folder and its
DuckDB file go there), plus ``--start``/``--end`` days and ``--concurrency``.

The pipeline:

- ``day_windows``: a plain resource yielding one ``[D 00:00:00Z, D+1 00:00:00Z]`` window per day;
- ``session_list``: ``GET /api/sessions`` for each window (parameters resolved from the parent),
  offset paging with ``limit=100``, ``count=none``, stopping on ``has_next_page``; rows of the next
  day (exactly on the upper bound) are filtered out; not loaded itself;
- ``sessions``: ``GET /api/sessions/{id}?expand=event_stream,session_input`` for every listed row,
  ``parallelized`` over ``extract.workers`` = concurrency threads, with a map step that decodes the
  event stream's base64 into ``events`` (seq, elapsed, type, payload bytes) so that dlt's
  normalizer writes them as a child table, as the project writes ``session_events``.

It prints one JSON line: requests sent, sessions loaded and event rows loaded.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dlt
import requests
from dlt.sources.rest_api import rest_api_source


class CountingSession(requests.Session):
    """A requests session that counts what it sends (the figure the table reports)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent += 1
        return super().send(request, **kwargs)


def _windows(start: date, end: date) -> Iterator[dict[str, str]]:
    day = start
    while day <= end:
        nxt = day + timedelta(days=1)
        yield {"day": day.isoformat(), "start": f"{day}T00:00:00Z", "end": f"{nxt}T00:00:00Z"}
        day = nxt


def _of_the_day(row: dict[str, Any]) -> bool:
    # include_from_parent names the window's day `_day_windows_day`; a session exactly on the
    # upper bound belongs to the next day, and would otherwise be loaded twice.
    return str(row["start_date"]).startswith(row["_day_windows_day"])


def _decode_events(record: dict[str, Any]) -> dict[str, Any]:
    stream = record.pop("event_stream", None)
    events = []
    if isinstance(stream, list) and not (len(stream) == 1 and isinstance(stream[0], str)):
        for seq, (elapsed, kind, data) in enumerate(stream):
            events.append(
                {
                    "seq": seq,
                    "elapsed_seconds": elapsed,
                    "event_type": kind,
                    "payload": base64.b64decode(data),
                }
            )
    record["events"] = events
    return record


def build_source(*, url: str, token: str, start: date, end: date, session: requests.Session) -> Any:
    @dlt.resource(selected=False)
    def day_windows() -> Iterator[list[dict[str, str]]]:
        # Dependent resources get pages (lists) from their parent: one page of all the windows.
        yield list(_windows(start, end))

    return rest_api_source(
        {
            "client": {
                "base_url": url.rstrip("/") + "/",
                "auth": {"type": "bearer", "token": token},
                "session": session,
            },
            "resource_defaults": {"write_disposition": "replace"},
            "resources": [
                day_windows,
                {
                    "name": "session_list",
                    "selected": False,
                    "include_from_parent": ["day"],
                    "endpoint": {
                        "path": "api/sessions",
                        "params": {
                            "start_date": "{resources.day_windows.start}",
                            "end_date": "{resources.day_windows.end}",
                            "count": "none",
                        },
                        "paginator": {
                            "type": "offset",
                            "limit": 100,
                            "offset_param": "offset",
                            "limit_param": "limit",
                            "total_path": None,
                            "has_more_path": "has_next_page",
                        },
                        "data_selector": "data",
                    },
                    "processing_steps": [{"filter": _of_the_day}],
                },
                {
                    "name": "sessions",
                    "primary_key": "id",
                    "parallelized": True,
                    "endpoint": {
                        "path": "api/sessions/{resources.session_list.id}",
                        "params": {"expand": "event_stream,session_input"},
                        "data_selector": "$",
                        "paginator": "single_page",
                    },
                    "processing_steps": [{"map": _decode_events}],
                },
            ],
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="hoop sessions into DuckDB with dlt")
    parser.add_argument("--start", required=True, type=date.fromisoformat)
    parser.add_argument("--end", required=True, type=date.fromisoformat)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    url, token = os.environ["HOOP_API_URL"], os.environ["HOOP_API_TOKEN"]
    data_dir = Path(os.environ.get("HOOP_DATA_DIR") or "dlt-data")
    data_dir.mkdir(parents=True, exist_ok=True)
    # What a user sets for a parallel transformer: as many extract threads as requests in flight.
    os.environ.setdefault("EXTRACT__WORKERS", str(args.concurrency))
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    session = CountingSession()
    pipeline = dlt.pipeline(
        pipeline_name="hoop_sessions_bench",
        pipelines_dir=str(data_dir / "pipelines"),
        destination=dlt.destinations.duckdb(str(data_dir / "dlt.duckdb")),
        dataset_name="hoop",
    )
    pipeline.run(
        build_source(url=url, token=token, start=args.start, end=args.end, session=session)
    )
    with pipeline.sql_client() as client:
        sessions = client.execute_sql("SELECT count(*) FROM sessions")[0][0]
        events = client.execute_sql("SELECT count(*) FROM sessions__events")[0][0]
    sys.stdout.write(
        json.dumps({"requests": session.sent, "sessions": sessions, "events": events}) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
