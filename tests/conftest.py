"""Shared fixtures: a local hoop gateway on loopback and settings pointing at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hoop_sessions.build.schema import DAY_TABLES
from hoop_sessions.config import Secret, Settings

pytest_plugins = ["tests.s3.fixtures"]  # a loopback S3 server, buckets and a fault proxy

# Data for the simulated gateway: days in November 2026, read on 2026-11-20.
FIRST_DAY = date(2026, 11, 1)
NOW = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


@pytest.fixture
def gateway_factory() -> Iterator[Callable[..., Any]]:
    """Start simulated gateways on loopback; all are stopped at the end of the test."""
    from hoop_sessions.simulator import SimulatorConfig, serve

    with ExitStack() as stack:

        def start(**options: Any) -> Any:
            options.setdefault("start", FIRST_DAY)
            options.setdefault("now", NOW)
            config = SimulatorConfig(**options)
            gateway = stack.enter_context(serve(config))
            return gateway

        yield start


def settings_for(gateway: Any, data_dir: Path, **overrides: Any) -> Settings:
    """Settings that sync from ``gateway`` into ``data_dir``, with quick retries for tests."""
    values: dict[str, Any] = {
        "api_url": gateway.url,
        "api_token": Secret(gateway.token),
        "data_dir": data_dir,
        "retry_attempts": 8,
        "retry_max_seconds": 60.0,
        "timeout_seconds": 10.0,
        "lock_timeout_seconds": 30.0,
    }
    values.update(overrides)
    return Settings(**values)


def table_contents(
    warehouse: Path, *, ignore: tuple[str, ...] = ()
) -> dict[str, list[tuple[Any, ...]]]:
    """Every day table's rows, sorted, without the ``ignore`` columns: to compare two warehouses."""
    out = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table in DAY_TABLES:
            cols = [c for c in table.columns if c not in ignore]
            select = ", ".join(f'"{c}"' for c in cols)
            out[table.name] = sorted(
                con.execute(f'SELECT {select} FROM "{table.name}"').fetchall(), key=repr
            )
    return out


RUN_TIME_COLUMNS = (
    "synced_at",
    "started_at",
    "finished_at",
    "seen_at",
    "requests",
    "retries",
    "pages",
)
