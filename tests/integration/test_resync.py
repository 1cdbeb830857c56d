"""Reading a day again costs what changed in it, and picks up every change."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, time, timedelta

import duckdb
import orjson
import pytest

from hoop_sessions.build.schema import SESSIONS
from hoop_sessions.extract.raw import HEADER_KEY, RawDayWriter, raw_path
from hoop_sessions.sync.run import sync_days
from tests.conftest import FIRST_DAY, NOW, RUN_TIME_COLUMNS, settings_for, table_contents

DAYS = [FIRST_DAY, FIRST_DAY + timedelta(days=1)]


def test_reading_unchanged_days_again_lists_them_and_reads_no_session(
    gateway_factory, tmp_path, monkeypatch
):
    gateway = gateway_factory(days=3, sessions_per_day=80, seed=31)
    settings = settings_for(gateway, tmp_path)
    assert sync_days(settings, DAYS, now=NOW).ok
    before = table_contents(tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        open_sessions = con.execute("SELECT count(*) FROM sessions WHERE NOT is_final").fetchone()[
            0
        ]
    raw_files = {day: raw_path(settings.raw_dir, day) for day in DAYS}
    raw_before = {
        day: (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes())
        for day, path in raw_files.items()
    }
    gateway.reset_stats()
    written: list[int] = []
    real_write = RawDayWriter.write
    monkeypatch.setattr(
        RawDayWriter,
        "write",
        lambda self, body: (written.append(len(body)), real_write(self, body))[1],
    )
    again = sync_days(settings, DAYS, now=NOW)
    assert again.ok
    gets = gateway.stats.requests.get("get", 0)
    # Only the sessions that were not final are read again; with the gateway's clock unchanged
    # their records are the same, so neither day is rebuilt and not a row changes.
    assert gets == open_sessions
    assert [d.build for d in again.days] == [None, None]
    assert table_contents(tmp_path / "warehouse.duckdb") == before
    # Compared by digest, an unchanged day's raw file is not even written again.
    assert written == []
    raw_after = {
        day: (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes())
        for day, path in raw_files.items()
    }
    assert raw_after == raw_before
    assert not list(settings.raw_dir.glob("*/.*.tmp")) and not list(
        settings.raw_dir.glob("*/.*.bodies")
    )


def _drop_digests(path) -> None:
    """Make a raw file look like one written before bodies had digests in its record."""
    lines = gzip.decompress(path.read_bytes()).splitlines(keepends=True)
    record = orjson.loads(lines[0])
    del record[HEADER_KEY]["digests"]
    path.write_bytes(gzip.compress(orjson.dumps(record) + b"\n" + b"".join(lines[1:])))


def _sessions(warehouse) -> dict[str, tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        cols = [c for c in SESSIONS.columns if c not in RUN_TIME_COLUMNS]
        select = ", ".join(f'"{c}"' for c in cols)
        return {
            r[0]: r for r in con.execute(f"SELECT session_id, {select} FROM sessions").fetchall()
        }


@pytest.mark.parametrize(
    "previous_file", ["with digests", "from an older version, without digests"]
)
def test_a_session_that_finished_since_the_last_read_is_updated(
    gateway_factory, tmp_path, previous_file
):
    """Within the rolling window the day is listed again: the result equals a full read."""
    end_of_day = datetime.combine(DAYS[1] + timedelta(days=1), time(0, 20), tzinfo=UTC)
    gateway = gateway_factory(days=3, sessions_per_day=80, seed=31, now=end_of_day)
    first_now = gateway.now
    settings = settings_for(gateway, tmp_path)
    assert sync_days(settings, [DAYS[1]], now=first_now).ok
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        open_before = {
            r[0]
            for r in con.execute("SELECT session_id FROM sessions WHERE status = 'open'").fetchall()
        }
    assert open_before, "no session was still open right after the day ended"
    if previous_file != "with digests":
        _drop_digests(raw_path(settings.raw_dir, DAYS[1]))
    later = first_now + timedelta(days=settings.rolling_days - 1)
    gateway.set_now(later)
    gateway.reset_stats()
    again = sync_days(settings, [DAYS[1]], now=later)
    assert again.ok and again.days[0].extract.listed_again
    assert gateway.stats.requests.get("list", 0) > 0
    redone = tmp_path / "redo"
    assert sync_days(settings_for(gateway, redone), [DAYS[1]], now=later, reuse=False).ok
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        still_open = {
            r[0]
            for r in con.execute("SELECT session_id FROM sessions WHERE status = 'open'").fetchall()
        }
    assert open_before - still_open, f"no session finished in {settings.rolling_days - 1} days"
    # The incremental re-read holds exactly what a full read at the same moment holds.
    ignore = (*RUN_TIME_COLUMNS,)
    assert table_contents(tmp_path / "warehouse.duckdb", ignore=ignore) == table_contents(
        redone / "warehouse.duckdb", ignore=ignore
    )


def test_a_day_past_the_rolling_window_reads_its_open_sessions_by_id_without_listing(
    gateway_factory, tmp_path
):
    """Past the rolling window only the sessions not final are read again, and they end exactly as
    a full read has them; the final ones stay as they were read; the day still reconciles."""
    end_of_day = datetime.combine(DAYS[1] + timedelta(days=1), time(0, 20), tzinfo=UTC)
    gateway = gateway_factory(days=3, sessions_per_day=80, seed=31, now=end_of_day)
    # Read once more than HOOP_SETTLE_HOURS after its end: here any time after it.
    settings = settings_for(gateway, tmp_path, settle_hours=0)
    assert sync_days(settings, [DAYS[1]], now=gateway.now).ok
    before = _sessions(tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        open_before = {
            r[0]
            for r in con.execute("SELECT session_id FROM sessions WHERE NOT is_final").fetchall()
        }
    assert open_before
    later = gateway.now + timedelta(days=10)
    gateway.set_now(later)
    gateway.reset_stats()
    again = sync_days(settings, [DAYS[1]], now=later)
    assert again.ok
    assert not again.days[0].extract.listed_again
    assert gateway.stats.requests.get("list", 0) == 0
    assert gateway.stats.requests.get("get", 0) == len(open_before)
    redone = tmp_path / "redo"
    assert sync_days(settings_for(gateway, redone), [DAYS[1]], now=later, reuse=False).ok
    after, full = _sessions(tmp_path / "warehouse.duckdb"), _sessions(redone / "warehouse.duckdb")
    assert after.keys() == full.keys() == before.keys()
    assert {sid: after[sid] for sid in open_before} == {sid: full[sid] for sid in open_before}
    assert any(after[sid] != before[sid] for sid in open_before), (
        "no open session changed in ten days"
    )
    assert {sid: row for sid, row in after.items() if sid not in open_before} == {
        sid: row for sid, row in before.items() if sid not in open_before
    }
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        windows = con.execute(
            "SELECT sessions_listed, sessions_loaded, sessions_rejected, pages, requests FROM sync_windows"
        ).fetchall()
    assert [w[:3] for w in windows] == [(80, 80, 0)]
    # The window keeps what was listed before and counts this run's requests: no page, the gets.
    assert windows[0][3:] == (0, len(open_before))
