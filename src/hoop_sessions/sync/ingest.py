"""Load session records that did not come over HTTP (fixtures, exports) through the real path.

Records are grouped by UTC start day, written as that day's raw file exactly as the extractor
writes it, then built into the lake and loaded into the warehouse by the same code as a sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from hoop_sessions.build.flatten import group_by_day
from hoop_sessions.config import Settings
from hoop_sessions.extract.principal import Principal
from hoop_sessions.extract.raw import RawDayWriter
from hoop_sessions.extract.windows import day_window
from hoop_sessions.sync.day import build_and_record, load_and_record
from hoop_sessions.sync.run import publish_warehouse

FIXTURE_PRINCIPAL: Principal = {
    "id": "fixture",
    "email": "fixture@localhost",
    "groups": ["auditor"],
    "is_admin": False,
}


def ingest_records(
    records: Iterable[dict[str, Any]],
    *,
    data_dir: Path,
    synced_at: datetime,
    api_url: str = "fixture://records",
) -> Path:
    """Write, build and load every record, then publish; returns the published warehouse path."""
    settings = Settings(data_dir=data_dir)
    settings.ensure_data_dir()
    for day, day_records in sorted(group_by_day(records).items()):
        window = day_window(day)
        ordered = sorted(day_records, key=lambda r: (str(r.get("start_date")), str(r.get("id"))))
        ids = [str(r.get("id")).lower() for r in ordered]
        with RawDayWriter(settings.raw_dir, day) as writer:
            for record in ordered:
                writer.write(orjson.dumps(record))
            writer.commit(
                {
                    "format": 1,
                    "start_day": day.isoformat(),
                    "api_url": api_url,
                    "principal": FIXTURE_PRINCIPAL,
                    "started_at": synced_at.isoformat(),
                    "finished_at": synced_at.isoformat(),
                    "order": ids,
                    "windows": [
                        {
                            "window_start": window.start.isoformat(),
                            "window_end": window.end.isoformat(),
                            "pages": 0,
                            "requests": 0,
                            "retries": 0,
                            "started_at": synced_at.isoformat(),
                            "finished_at": synced_at.isoformat(),
                            "session_ids": ids,
                        }
                    ],
                    "rejects": [],
                }
            )
        build_and_record(settings, day)
        load_and_record(settings, day)
    publish_warehouse(settings)
    return settings.warehouse_path
