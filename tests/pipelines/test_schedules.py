"""The nightly schedule: which days a tick requests, and a late change picked up the next night."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from dagster import RunRequest, build_schedule_context

from hoop_sessions.flatten import is_final
from hoop_sessions.ingest import ingest_records
from hoop_sessions.simulator import Dataset, SimulatorConfig
from pipelines.definitions import defs
from pipelines.resources import WarehouseResource
from pipelines.schedules import hoop_nightly
from tests.pipelines.conftest import NOW, Hoop, HoopFactory, days_ago

# Finality judged long after the read: open, ready or pending, not "approved until later today".
LATER = datetime(2100, 1, 1, tzinfo=UTC)


def tick(when: datetime, data_dir: Path) -> list[RunRequest]:
    context = build_schedule_context(
        scheduled_execution_time=when,
        resources={"warehouse": WarehouseResource(data_dir=str(data_dir))},
    )
    requests = hoop_nightly(context)
    assert isinstance(requests, list), requests
    return requests


def night_of(day: date) -> datetime:
    return datetime.combine(day, time(1, 15), UTC)


def records(seed: int, day: date, at: datetime) -> list[dict]:
    dataset = Dataset(SimulatorConfig(seed=seed, start=day, days=1, sessions_per_day=20, now=at))
    return [dataset.record(sid, now=at) for sid in dataset.session_ids(day, now=at)]


def still_open(record: dict) -> bool:
    return not is_final(record["status"], record.get("review"), LATER)


def synced_with_an_open_session(data_dir: Path, day: date, *, read_at: datetime) -> None:
    """A warehouse holding ``day`` as a simulated gateway served it at ``read_at``, with at least
    one session still open then (the seed is searched: the data is a function of seed and day)."""
    for seed in range(1, 100):
        served = records(seed, day, read_at)
        if any(still_open(r) for r in served):
            ingest_records(served, data_dir=data_dir, synced_at=read_at)
            return
    raise AssertionError(f"no simulated day {day} with a session open at {read_at}")


@pytest.fixture(autouse=True)
def default_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOOP_ROLLING_DAYS", "HOOP_FINAL_HORIZON_DAYS", "HOOP_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_a_tick_requests_yesterday_the_last_three_days_and_a_day_still_open(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    open_day = days_ago(10)
    synced_with_an_open_session(
        data_dir, open_day, read_at=datetime.combine(open_day, time(23, 30), UTC)
    )
    today = days_ago(0)

    requests = tick(night_of(today), data_dir)

    assert [r.partition_key for r in requests] == [
        open_day.isoformat(),
        days_ago(3).isoformat(),
        days_ago(2).isoformat(),
        days_ago(1).isoformat(),
    ]
    assert [r.run_key for r in requests] == [f"nightly-{today}-{r.partition_key}" for r in requests]
    freshness = {
        r.partition_key: any(k.name == "yesterday_loaded" for k in r.asset_check_keys or ())
        for r in requests
    }
    assert freshness == {
        r.partition_key: r.partition_key == days_ago(1).isoformat() for r in requests
    }


def test_the_same_tick_evaluated_twice_asks_for_the_same_runs(tmp_path: Path) -> None:
    when = night_of(days_ago(0))

    first, second = tick(when, tmp_path / "data"), tick(when, tmp_path / "data")

    assert [r.run_key for r in first] == [r.run_key for r in second]
    assert [r.partition_key for r in first] == [
        d.isoformat() for d in (days_ago(3), days_ago(2), days_ago(1))
    ]


def late_session(day: date, night1: datetime, night2: datetime) -> tuple[int, str]:
    """A seed and a session of ``day`` still open at night 1 and final at night 2."""
    for seed in range(1, 200):
        later = {r["id"]: r for r in records(seed, day, night2)}
        for record in records(seed, day, night1):
            changed = later[record["id"]]
            if still_open(record) and is_final(changed["status"], changed.get("review"), night2):
                return seed, record["id"]
    raise AssertionError(f"no simulated session of {day} finishes between {night1} and {night2}")


def run_nightly(hoop: Hoop, requests: list[RunRequest]) -> None:
    job = defs.resolve_job_def("hoop_sync")
    for request in requests:
        result = job.execute_in_process(
            partition_key=request.partition_key,
            instance=hoop.instance,
            tags=request.tags,
            raise_on_error=False,
        )
        assert result.success, request.partition_key


def test_a_session_open_at_night_one_and_finished_before_night_two_is_final_after_night_two(
    hoop_factory: HoopFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Yesterday only: the open day must be re-read because it is open, not because it is recent.
    monkeypatch.setenv("HOOP_ROLLING_DAYS", "1")
    # Night 2 is now: the library judges finality at the time it reads (a JIT approval ends at
    # revoke_at), so the gateway's clock must not lag the real one at the second read. Night 1 is
    # early yesterday, whatever the time now: a night 1 of exactly a day ago left, from about
    # 11:00 UTC on, no simulated session of the day that was open then and final now.
    night1, night2 = night_of(days_ago(1)), NOW
    day = days_ago(2)
    seed, session_id = late_session(day, night1, night2)
    hoop = hoop_factory(seed=seed, start=day, days=2, now=night1)

    first = tick(night1, hoop.data_dir)
    assert [r.partition_key for r in first] == [day.isoformat()]
    run_nightly(hoop, first)
    assert hoop.query("SELECT is_final FROM sessions WHERE session_id = ?", session_id) == [
        (False,)
    ]

    hoop.gateway.set_now(night2)
    second = tick(night2, hoop.data_dir)

    assert [r.partition_key for r in second] == [day.isoformat(), days_ago(1).isoformat()]
    run_nightly(hoop, second)
    served = Dataset(hoop.config).record(session_id, now=night2)
    assert hoop.query(
        "SELECT is_final, status, review_status FROM sessions WHERE session_id = ?", session_id
    ) == [(True, served["status"], (served.get("review") or {}).get("status"))]
