"""Ground truth: what a perfect sync of every simulated day would hold."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from .config import SimulatorConfig
from .dataset import Dataset
from .query import visible_to


def export_truth(cfg: SimulatorConfig, path: str | Path, *, now: datetime | None = None) -> int:
    """Write one JSON line per session that exists at `now` (default: the config's clock),
    byte for byte the body of `GET /api/sessions/{id}?expand=event_stream,session_input` for
    the config's token. Days ascending, sessions by (start_date, id) ascending. Returns the
    number of lines. Fault knobs (failing days and sessions) do not change the truth."""
    dataset = Dataset(cfg)
    now_us = dataset.now_us(now)
    identity = cfg.identity
    visible = visible_to(identity)
    count = 0
    with Path(path).open("wb") as out:
        for day in dataset.days():
            for plan in reversed(dataset.day(day).plans):
                if plan.visible_from_us > now_us or not visible(plan):
                    continue
                allowed = identity.sees_everything or plan.user.subject == identity.subject
                body = dataset.get_body(plan, now_us, stream_allowed=allowed)
                if isinstance(body, bytes):
                    out.write(body)
                else:
                    for part in body.parts():
                        out.write(part)
                count += 1
    return count
