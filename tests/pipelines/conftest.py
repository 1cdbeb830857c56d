"""Fixtures for the Dagster project: the simulator on loopback, the environment the code location
reads, an ephemeral instance, and a way to materialize days as the UI and the schedule do.

Days are relative to today: the partitions start 30 days before the day the code loads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

# The partitions are built from the environment: keep the default window in tests.
os.environ.pop("HOOP_SYNC_START_DATE", None)

from dagster import DagsterInstance, ExecuteInProcessResult, materialize

from hoop_sessions.simulator import Dataset, SimulatorConfig, serve
from pipelines.assets import build_assets
from pipelines.checks import hoop_checks
from pipelines.partitions import partitions_from_env
from pipelines.resources import resources_from_env
from pipelines.schedules import build_nightly
from pipelines.sensors import build_ledger_sensor

# The partitions, assets, schedule and sensor as pipelines.definitions builds them when the code
# location loads.
hoop_days = partitions_from_env(os.environ)
hoop_assets = build_assets(hoop_days)
hoop_nightly = build_nightly(hoop_days)
hoop_ledger = build_ledger_sensor(hoop_days)

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def days_ago(n: int) -> date:
    return TODAY - timedelta(days=n)


@dataclass
class Hoop:
    """A simulated gateway, the data directory the code location uses, and the Dagster instance."""

    gateway: Any
    config: SimulatorConfig
    data_dir: Path
    instance: DagsterInstance

    @property
    def warehouse(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    def materialize(
        self,
        partition_key: str | None = None,
        *,
        first: date | None = None,
        last: date | None = None,
    ) -> ExecuteInProcessResult:
        """Every hoop asset and check for one partition, or for [first, last] in one run (what a
        single-run backfill launches)."""
        tags = (
            {RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()}
            if first and last
            else None
        )
        return materialize(
            [*hoop_assets, *hoop_checks],
            partition_key=partition_key,
            tags=tags,
            resources=resources_from_env(),
            instance=self.instance,
            raise_on_error=False,
        )

    def gets(self) -> int:
        """Session gets the gateway served since the last call."""
        count = self.gateway.stats.requests.get("get", 0)
        self.gateway.reset_stats()
        return int(count)

    def truth(self, day: date, now: datetime | None = None) -> set[str]:
        return set(Dataset(self.config).session_ids(day, now=now or self.gateway.now))

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql, list(params)).fetchall()


HoopFactory = Callable[..., Hoop]


def point_env_at(monkeypatch: pytest.MonkeyPatch, gateway: Any, data_dir: Path) -> None:
    """The environment variables of the contract, as a deployment sets them; quick retries."""
    monkeypatch.setenv("HOOP_API_URL", gateway.url)
    monkeypatch.setenv("HOOP_API_TOKEN", gateway.token)
    monkeypatch.setenv("HOOP_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HOOP_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("HOOP_RETRY_MAX_SECONDS", "5")
    monkeypatch.setenv("HOOP_TIMEOUT_SECONDS", "10")
    monkeypatch.setenv("HOOP_WAREHOUSE_LOCK_TIMEOUT", "30")


@pytest.fixture
def hoop_factory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HoopFactory]:
    """Start a simulator (small days ending yesterday) and point the code location at it."""
    instance = DagsterInstance.ephemeral()
    data_dir = tmp_path / "data"
    with ExitStack() as stack:

        def start(**options: Any) -> Hoop:
            options.setdefault("start", days_ago(4))
            options.setdefault("days", 4)
            options.setdefault("sessions_per_day", 20)
            options.setdefault("now", NOW)
            options.setdefault("token", "hpk_test_" + os.urandom(6).hex())
            config = SimulatorConfig(**options)
            gateway = stack.enter_context(serve(config))
            point_env_at(monkeypatch, gateway, data_dir)
            return Hoop(gateway, config, data_dir, instance)

        yield start


@pytest.fixture
def hoop(hoop_factory: HoopFactory) -> Hoop:
    return hoop_factory()
