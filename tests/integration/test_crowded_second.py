"""A second holding more sessions than offset paging reaches is read through list filters."""

from __future__ import annotations

import asyncio
from collections import Counter

from hoop_sessions.extract.client import HoopClient
from hoop_sessions.extract.listing import READABLE_ROWS, list_day
from hoop_sessions.simulator import Dataset
from tests.conftest import FIRST_DAY, NOW, settings_for

BURST = 10_150


def test_more_sessions_in_one_second_than_offset_paging_reaches_are_all_listed(
    gateway_factory, tmp_path
):
    gateway = gateway_factory(
        days=1, sessions_per_day=BURST + 50, burst_size=BURST, profile="plain", seed=5
    )
    settings = settings_for(gateway, tmp_path)

    async def go():
        async with HoopClient(settings) as client:
            return await list_day(client, FIRST_DAY)

    windows, found = asyncio.run(go())
    truth = set(Dataset(gateway.config).session_ids(FIRST_DAY, now=NOW))
    seconds = Counter(start.replace(microsecond=0) for start, _ in found.by_id.values())
    assert max(seconds.values()) > READABLE_ROWS, (
        "the burst did not put that many sessions in one second"
    )
    assert set(found.by_id) == truth
    assert found.gaps == []
    assert sum(len(w.session_ids) for w in windows) == len(found.by_id)
    assert len({w.window for w in windows}) == len(windows), "one ledger row per window"
