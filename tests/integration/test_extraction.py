"""Extraction against the local gateway: complete windows, faults, errors, permissions."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import duckdb
import pytest

from hoop_sessions.config import Secret
from hoop_sessions.errors import (
    AuthenticationError,
    InvalidRequestError,
    PartialVisibilityError,
)
from hoop_sessions.extract.client import HoopClient, RequestStats
from hoop_sessions.extract.listing import list_day
from hoop_sessions.simulator import Dataset
from hoop_sessions.simulator.config import TokenIdentity
from hoop_sessions.sync.run import sync_days
from tests.conftest import FIRST_DAY, NOW, RUN_TIME_COLUMNS, settings_for, table_contents

REVIEWER = TokenIdentity(email="rita@acme.example", name="Rita", subject="rita", groups=("sre",))


def truth_ids(gateway, day: date) -> set[str]:
    return set(Dataset(gateway.config).session_ids(day, now=NOW))


def warehouse_ids(data_dir, day: date) -> list[str]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return [
            r[0]
            for r in con.execute(
                "SELECT session_id FROM sessions WHERE start_day = ?", [day]
            ).fetchall()
        ]


def listed(gateway, settings, day):
    async def go():
        async with HoopClient(settings) as client:
            return await list_day(client, day)

    return asyncio.run(go())


@pytest.mark.slow
def test_a_day_larger_than_offset_paging_reaches_is_listed_completely_by_splitting(
    gateway_factory, tmp_path
):
    gateway = gateway_factory(days=1, sessions_per_day=25_000, profile="plain", seed=3)
    settings = settings_for(gateway, tmp_path)
    windows, found = listed(gateway, settings, FIRST_DAY)
    assert set(found.by_id) == truth_ids(gateway, FIRST_DAY)
    assert len(windows) > 2
    assert windows[0].window.start.date() == FIRST_DAY and windows[
        -1
    ].window.end.date() == FIRST_DAY + timedelta(days=1)
    assert sum(len(w.session_ids) for w in windows) == len(found.by_id)


def test_a_burst_of_sessions_in_one_second_is_read_completely(gateway_factory, tmp_path):
    gateway = gateway_factory(days=1, sessions_per_day=300, burst_size=450, profile="plain", seed=5)
    settings = settings_for(gateway, tmp_path)
    _, found = listed(gateway, settings, FIRST_DAY)
    assert set(found.by_id) == truth_ids(gateway, FIRST_DAY)


def test_sessions_on_day_boundaries_land_in_exactly_one_day(gateway_factory, tmp_path):
    gateway = gateway_factory(days=3, sessions_per_day=40, boundary_sessions=True, seed=9)
    settings = settings_for(gateway, tmp_path)
    days = [FIRST_DAY + timedelta(days=i) for i in range(3)]
    result = sync_days(settings, days, now=NOW)
    assert result.ok, result.failed
    seen: dict[str, date] = {}
    for day in days:
        ids = warehouse_ids(tmp_path, day)
        assert set(ids) <= truth_ids(gateway, day)
        for sid in ids:
            assert sid not in seen, f"{sid} in {seen.get(sid)} and {day}"
            seen[sid] = day
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        on_midnight = con.execute(
            "SELECT count(*) FROM sessions WHERE start_date = date_trunc('day', start_date)"
        ).fetchone()[0]
    assert on_midnight > 0, "the simulator planted no session exactly at midnight"


def test_a_legacy_gateway_is_synced_completely(gateway_factory, tmp_path):
    gateway = gateway_factory(days=2, sessions_per_day=250, legacy_gateway=True, seed=4)
    settings = settings_for(gateway, tmp_path)
    result = sync_days(settings, [FIRST_DAY, FIRST_DAY + timedelta(days=1)], now=NOW)
    assert result.ok, result.failed
    for day in (FIRST_DAY, FIRST_DAY + timedelta(days=1)):
        loaded = warehouse_ids(tmp_path, day)
        assert len(loaded) == len(set(loaded))
        assert set(loaded) | rejected_ids(tmp_path, day) == truth_ids(gateway, day)


def rejected_ids(data_dir, day) -> set[str]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return {
            r[0]
            for r in con.execute(
                "SELECT session_id FROM rejects WHERE start_day = ? AND stage <> 'stream'", [day]
            ).fetchall()
        }


def test_a_20_percent_fault_rate_gives_the_same_warehouse_as_no_faults(gateway_factory, tmp_path):
    days = [FIRST_DAY, FIRST_DAY + timedelta(days=1)]
    clean = gateway_factory(days=2, sessions_per_day=60, seed=21)
    flaky = gateway_factory(
        days=2, sessions_per_day=60, seed=21, fault_rate=0.2, slow_response_s=1.5
    )
    a, b = tmp_path / "clean", tmp_path / "flaky"
    assert sync_days(settings_for(clean, a), days, now=NOW).ok
    result = sync_days(settings_for(flaky, b, timeout_seconds=1.0), days, now=NOW)
    assert result.ok, result.failed
    assert sum(d.extract.retries for d in result.days) > 0
    ignore = (*RUN_TIME_COLUMNS, "api_url")
    assert table_contents(b / "warehouse.duckdb", ignore=ignore) == table_contents(
        a / "warehouse.duckdb", ignore=ignore
    )


def test_a_wrong_token_fails_fast_naming_the_status_path_and_what_to_do(gateway_factory, tmp_path):
    gateway = gateway_factory(days=1, sessions_per_day=5)
    settings = settings_for(gateway, tmp_path, api_token=Secret("wrong-token"))
    with pytest.raises(AuthenticationError) as info:
        sync_days(settings, [FIRST_DAY], now=NOW)
    text = str(info.value)
    assert "401" in text and "/api/userinfo" in text and "HOOP_API_TOKEN" in text
    assert "wrong-token" not in text


def test_a_422_is_not_retried_and_says_which_option(gateway_factory, tmp_path):
    gateway = gateway_factory(days=1, sessions_per_day=5)
    settings = settings_for(gateway, tmp_path)

    async def go():
        async with HoopClient(settings) as client:
            stats = RequestStats()
            with pytest.raises(InvalidRequestError) as info:
                await client.list_page(start=NOW, end=NOW, offset=10_001, stats=stats)
            return stats, info.value

    stats, error = asyncio.run(go())
    assert stats.requests == 1 and stats.retries == 0
    assert error.status == 422 and "offset" in error.message and "/api/sessions" in str(error)


def test_a_token_that_is_neither_admin_nor_auditor_is_refused(gateway_factory, tmp_path):
    gateway = gateway_factory(
        days=1, sessions_per_day=20, extra_tokens={"reviewer-token": REVIEWER}
    )
    settings = settings_for(gateway, tmp_path, api_token=Secret("reviewer-token"))
    with pytest.raises(PartialVisibilityError, match="neither 'admin' nor 'auditor'"):
        sync_days(settings, [FIRST_DAY], now=NOW)
    assert not (tmp_path / "warehouse.duckdb").exists()
    allowed = settings_for(
        gateway, tmp_path, api_token=Secret("reviewer-token"), allow_partial_visibility=True
    )
    assert sync_days(allowed, [FIRST_DAY], now=NOW).ok


def test_a_day_that_keeps_failing_keeps_its_previous_content_and_other_days_complete(
    gateway_factory, tmp_path
):
    days = [FIRST_DAY, FIRST_DAY + timedelta(days=1)]
    good = gateway_factory(days=2, sessions_per_day=30, seed=8)
    assert sync_days(settings_for(good, tmp_path), days, now=NOW).ok
    before = warehouse_ids(tmp_path, days[0])
    broken = gateway_factory(days=2, sessions_per_day=30, seed=8, failing_days=frozenset({days[0]}))
    # Listed again: the list itself fails, so the whole day fails and keeps its content.
    result = sync_days(settings_for(broken, tmp_path, retry_attempts=3), days, now=NOW, relist=days)
    assert list(result.failed) == [days[0]]
    assert "kept failing" in result.failed[days[0]]
    assert [d.day for d in result.days] == [days[1]]
    assert warehouse_ids(tmp_path, days[0]) == before
    assert not result.ok


def test_sessions_that_cannot_be_read_again_keep_their_previous_copy_and_are_reported(
    gateway_factory, tmp_path
):
    """Past the rolling window only the open sessions are read, by id; each failing get keeps
    the session's previous body and rows, and the run names them as incomplete."""
    days = [FIRST_DAY, FIRST_DAY + timedelta(days=1)]
    good = gateway_factory(days=2, sessions_per_day=30, seed=8)
    assert sync_days(settings_for(good, tmp_path), days, now=NOW).ok
    before = warehouse_ids(tmp_path, days[0])
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        open_ids = {
            r[0]
            for r in con.execute(
                "SELECT session_id FROM sessions WHERE start_day = ? AND NOT is_final", [days[0]]
            ).fetchall()
        }
    assert open_ids, "the seed should leave open sessions on the first day"
    broken = gateway_factory(days=2, sessions_per_day=30, seed=8, failing_days=frozenset({days[0]}))
    result = sync_days(settings_for(broken, tmp_path, retry_attempts=2), days, now=NOW)
    assert not result.failed
    assert warehouse_ids(tmp_path, days[0]) == before
    reported = result.incomplete[days[0]]
    assert len(reported) == len(open_ids)
    assert all("previous copy kept" in item for item in reported)
    assert not result.ok
    # A plain rerun against a healthy gateway reads them.
    again = sync_days(settings_for(good, tmp_path), days, now=NOW)
    assert again.ok and not again.incomplete
