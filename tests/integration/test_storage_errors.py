"""A day whose raw file cannot be written fails alone, in one line; the other days are synced."""

from __future__ import annotations

import errno
import os
from datetime import timedelta
from pathlib import Path

from hoop_sessions.extract.raw import RawDayWriter, day_dir, raw_path
from hoop_sessions.sync.run import sync_days
from tests.conftest import FIRST_DAY, NOW, settings_for

SECOND_DAY = FIRST_DAY + timedelta(days=1)


def test_a_full_disk_fails_only_the_day_it_happens_in_and_leaves_no_temporary_file(
    gateway_factory, tmp_path, monkeypatch
):
    gateway = gateway_factory(days=2, sessions_per_day=30, profile="plain", seed=11)
    settings = settings_for(gateway, tmp_path)

    def opener(path: Path):  # type: ignore[no-untyped-def]
        if f"start_day={FIRST_DAY}" in str(path) and path.name.endswith(".bodies"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return open(path, "wb")

    monkeypatch.setattr(RawDayWriter, "_open", staticmethod(opener))
    result = sync_days(settings, [FIRST_DAY, SECOND_DAY], now=NOW)
    assert list(result.failed) == [FIRST_DAY]
    assert (
        result.failed[FIRST_DAY]
        == f"cannot write {raw_path(settings.raw_dir, FIRST_DAY)}: No space left on device"
    )
    assert [d.day for d in result.days] == [SECOND_DAY]
    assert raw_path(settings.raw_dir, SECOND_DAY).exists()
    assert not raw_path(settings.raw_dir, FIRST_DAY).exists()
    assert [p.name for p in day_dir(settings.raw_dir, FIRST_DAY).iterdir()] == []
