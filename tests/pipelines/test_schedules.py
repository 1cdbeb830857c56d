"""The nightly schedule: which days a tick requests, and a late change picked up the next night."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from dagster import RunRequest, build_schedule_context

from hoop_sessions.extract.finality import is_final
from hoop_sessions.extract.values import EPOCH
from hoop_sessions.extract.windows import days_between
from hoop_sessions.simulator import Dataset, SimulatorConfig
from hoop_sessions.sync.ingest import ingest_records
from hoop_sessions.sync.ledger import DayEntry, Ledger, SessionEntry
from pipelines.definitions import defs
from pipelines.resources import WarehouseResource
from tests.pipelines.conftest import NOW, Hoop, HoopFactory, days_ago, hoop_days, hoop_nightly

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
    return not is_final(record, LATER)


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


def ledger_with_days_done(
    data_dir: Path, days: list[date], *, open_day: date | None = None
) -> None:
    """A sync ledger that calls every day of ``days`` done, except one session of ``open_day``."""
    ledger = Ledger(data_dir)
    for day in days:
        listed = datetime.combine(day, time(12), UTC) + timedelta(days=3)
        stamp = listed.isoformat()
        entry = DayEntry(day, listed_at=stamp, read_at=stamp, read_stamp=stamp, loaded_stamp=stamp)
        entry.sessions["a"] = SessionEntry(read_at=stamp, final_from=EPOCH.isoformat())
        if day == open_day:
            entry.sessions["b"] = SessionEntry(read_at=stamp, final_from=None)
        ledger.put(entry)


def request_days(request: RunRequest) -> tuple[str, str]:
    return (
        request.tags["dagster/asset_partition_range_start"],
        request.tags["dagster/asset_partition_range_end"],
    )


def test_a_tick_asks_one_run_from_the_oldest_day_not_done_to_yesterday(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = hoop_days.start.date()
    open_day = days_ago(10)
    ledger_with_days_done(data_dir, days_between(first, days_ago(4)), open_day=open_day)
    today = days_ago(0)

    requests = tick(night_of(today), data_dir)

    # One run for the tick: the open day, the rolling window, yesterday (the days in between that
    # are done are skipped by the run's own plan).
    assert len(requests) == 1
    assert request_days(requests[0]) == (open_day.isoformat(), days_ago(1).isoformat())
    assert requests[0].run_key == f"nightly-{today}"
    assert any(k.name == "yesterday_loaded" for k in requests[0].asset_check_keys or ())


def test_a_tick_catches_up_every_day_never_read_whatever_its_age(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = hoop_days.start.date()
    # Six nights missed: days 9..4 ago were never read; everything before is done.
    ledger_with_days_done(data_dir, days_between(first, days_ago(10)))

    requests = tick(night_of(days_ago(0)), data_dir)

    assert request_days(requests[0]) == (days_ago(9).isoformat(), days_ago(1).isoformat())


def test_the_same_tick_evaluated_twice_asks_for_the_same_runs(tmp_path: Path) -> None:
    when = night_of(days_ago(0))

    first, second = tick(when, tmp_path / "data"), tick(when, tmp_path / "data")

    assert [r.run_key for r in first] == [r.run_key for r in second]
    assert [request_days(r) for r in first] == [request_days(r) for r in second]


def late_session(day: date, night1: datetime, night2: datetime) -> tuple[int, str]:
    """A seed and a session of ``day`` still open at night 1 and final at night 2."""
    for seed in range(1, 200):
        later = {r["id"]: r for r in records(seed, day, night2)}
        for record in records(seed, day, night1):
            changed = later[record["id"]]
            if still_open(record) and is_final(changed, night2):
                return seed, record["id"]
    raise AssertionError(f"no simulated session of {day} finishes between {night1} and {night2}")


def run_nightly(hoop: Hoop, requests: list[RunRequest]) -> None:
    job = defs.resolve_job_def("hoop_sync")
    for request in requests:
        result = job.execute_in_process(
            instance=hoop.instance,
            tags=request.tags,
            raise_on_error=False,
        )
        assert result.success, request.tags


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
    # A first night reads every partition day up to the last closed one.
    assert [request_days(r) for r in first] == [
        (hoop_days.start.date().isoformat(), day.isoformat())
    ]
    run_nightly(hoop, first)
    assert hoop.query("SELECT is_final FROM sessions WHERE session_id = ?", session_id) == [
        (False,)
    ]

    hoop.gateway.set_now(night2)
    second = tick(night2, hoop.data_dir)

    # The day read 1 h 15 after its end is listed again; the empty days before it are done.
    assert [request_days(r) for r in second] == [(day.isoformat(), days_ago(1).isoformat())]
    run_nightly(hoop, second)
    served = Dataset(hoop.config).record(session_id, now=night2)
    assert hoop.query(
        "SELECT is_final, status, review_status FROM sessions WHERE session_id = ?", session_id
    ) == [(True, served["status"], (served.get("review") or {}).get("status"))]
