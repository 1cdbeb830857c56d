"""A backfill killed with SIGKILL at random moments, then run again, ends as if never interrupted.

The sequence: a warehouse holds an older version of several days (other sessions altogether, so
that a day mixing two versions cannot go unnoticed). `hoop-sessions backfill --redo` is started as
a subprocess and killed with SIGKILL, again and again, at moments drawn from a measured
uninterrupted run so that they fall in every phase of a day: listing, fetching, Parquet writing
and DuckDB loading. Then it runs to completion. Meanwhile a reader process opens the warehouse
read-only in a loop (a short connection each time, as analysts are told to) and records every day
it sees, which must be the old version or the new one, never a mix, with counts that reconcile.
Afterwards `hoop-sessions verify` must find every file as the day manifests say.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hoop_sessions.simulator import SimulatorConfig, serve
from tests.conftest import FIRST_DAY, NOW
from tests.reliability.conftest import backfill, cli_env, content_hash, run_cli

DAYS = [FIRST_DAY + timedelta(days=i) for i in range(3)]
PHASES = ("listing", "fetching", "parquet", "loading")
# The gateway of the old version and of the new one. A little latency stretches the fetching.
OLD = {"seed": 18, "days": len(DAYS), "sessions_per_day": 140}
SHAPE = {"seed": 17, "days": len(DAYS), "sessions_per_day": 150, "latency_ms": 4.0}
SMALL = {"seed": 17, "days": len(DAYS), "sessions_per_day": 40}  # for the tests of one kill
DECOY_PID = 4_194_301  # above the pid_max of most systems: no process of ours has it

# Per day: sessions, a digest of what changes in them, event rows, a digest of the events, and
# the ledger's listed, loaded, rejected and windows.
SIGNATURE_SQL = """
WITH s AS (SELECT start_day, count(*) AS n,
                  bit_xor(hash(session_id, status, end_date, exit_code, event_count, review_status,
                               is_final, metadata)) AS digest
           FROM sessions GROUP BY 1),
     e AS (SELECT start_day, count(*) AS n, bit_xor(hash(session_id, seq, payload)) AS digest
           FROM session_events GROUP BY 1),
     w AS (SELECT start_day, sum(sessions_listed) AS listed, sum(sessions_loaded) AS loaded,
                  sum(sessions_rejected) AS rejected, count(*) AS windows FROM sync_windows GROUP BY 1)
SELECT coalesce(s.start_day, e.start_day, w.start_day) AS day,
       coalesce(s.n, 0), s.digest, coalesce(e.n, 0), e.digest,
       w.listed, w.loaded, w.rejected, coalesce(w.windows, 0)
FROM s FULL JOIN e ON s.start_day = e.start_day FULL JOIN w ON coalesce(s.start_day, e.start_day) = w.start_day
"""

# The reader runs in a process of its own: a DuckDB read lock belongs to a process, and any
# other open() and close() of the file by the same process (the phase watch below) would drop it.
READER = r"""
import json, random, sys, time
from pathlib import Path
import duckdb
warehouse, stop, out, sql = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
seen, errors, reads, refused = {}, [], 0, 0
rng = random.Random(5)
while True:
    # One read more after the stop file appears: it comes after the rerun, so it sees the
    # warehouse that run published, however the sleeps fell.
    last = stop.exists()
    try:
        with duckdb.connect(warehouse, read_only=True) as con:
            rows = con.execute(sql).fetchall()
    except duckdb.Error as exc:
        refused += 1
        if "lock" not in str(exc).lower():
            errors.append(str(exc)[:300])
    else:
        reads += 1
        for row in rows:
            key = json.dumps([None if v is None else str(v) for v in row])
            seen[key] = seen.get(key, 0) + 1
    if last:
        break
    time.sleep(rng.uniform(0.005, 0.03))
out.write_text(json.dumps({"reads": reads, "refused": refused, "errors": errors[:20], "seen": seen}))
"""

Signature = tuple[str | None, ...]
Stage = tuple[str, date]  # (phase, day)


def signatures(warehouse: Path) -> dict[date, Signature]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(SIGNATURE_SQL).fetchall()
    return {row[0]: tuple(None if v is None else str(v) for v in row[1:]) for row in rows}


# -- watching a backfill from outside ---------------------------------------------------------


def write_locked(path: Path) -> bool:
    """Whether another process holds a write lock on ``path`` (DuckDB's, while it writes)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        query = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0) + bytes(4)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
        return struct.unpack("hhqqi", answer[:28])[0] == fcntl.F_WRLCK
    finally:
        os.close(fd)


class PhaseWatch:
    """The stages a backfill subprocess is in, judged from outside by what it leaves behind.

    Days are pipelined (day N is built and loaded while day N+1 is read), so several stages can
    be under way at once. fetching D: the raw file of D is being written (the ``.bodies`` side
    file of the run's pid exists); parquet D: the raw file of D was replaced but not yet its lake
    manifest; loading D: D's lake manifest was written and the warehouse was not written since,
    or a process holds DuckDB's write lock on it (a load, or the compliance findings at the end);
    listing D: list requests were sent since the raw file of the day before was written, and D is
    not being fetched yet.
    """

    def __init__(self, gateway: Any, data_dir: Path) -> None:
        self.gateway = gateway
        self.data_dir = data_dir

    def begin(self, pid: int) -> None:
        self.pid = pid
        self.started_ns = time.time_ns()
        self.lists_at: dict[date | None, int] = {None: self._lists()}

    def _lists(self) -> int:
        return self.gateway.stats.requests.get("list", 0)

    @staticmethod
    def _mtime(path: Path) -> int:
        try:
            return path.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def stages(self) -> set[Stage]:
        raw = self.data_dir / "raw"
        lists = self._lists()
        active: set[Stage] = set()
        previous: date | None = None
        built: tuple[date, int] | None = (
            None  # the last day whose lake files were written, and when
        )
        for day in DAYS:
            if (raw / f"start_day={day}" / f".sessions.ndjson.gz.{self.pid}.bodies").exists():
                active.add(("fetching", day))
                break
            if self._mtime(raw / f"start_day={day}" / "sessions.ndjson.gz") < self.started_ns:
                if lists > self.lists_at[previous]:
                    active.add(("listing", day))
                break
            self.lists_at.setdefault(day, lists)
            lake = self._mtime(
                self.data_dir / "lake" / "_manifests" / f"start_day={day}" / "_manifest.json"
            )
            if lake < self.started_ns:
                active.add(("parquet", day))
            else:
                built = (day, lake)
            previous = day
        if built is not None:
            warehouse = self.data_dir / "warehouse.duckdb"
            written = max(
                self._mtime(warehouse), self._mtime(warehouse.with_name(warehouse.name + ".wal"))
            )
            if written < built[1] or write_locked(warehouse):
                active.add(("loading", built[0]))
        return active


@dataclass
class Timeline:
    """When each stage was first and last seen, in seconds from the start of a run."""

    seen: dict[Stage, list[float]] = field(default_factory=dict)

    def add(self, at: float, stages: set[Stage]) -> None:
        for stage in stages:
            self.seen.setdefault(stage, [at, at])[1] = at

    def length(self, stage: Stage) -> float:
        first, last = self.seen[stage]
        return last - first


def start_backfill(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    args = ["backfill", "--start", str(DAYS[0]), "--end", str(DAYS[-1]), "--redo"]
    with open(log, "ab") as stderr:
        # A session of its own: what the run leaves behind after SIGKILL can be found by its id.
        return subprocess.Popen(
            [sys.executable, "-m", "hoop_sessions", *args],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )


def survivors(session: int) -> list[int]:
    """Processes still alive in the session a killed run started (its workers)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == session and fields[0] != "Z":
                    alive.append(int(entry.name))
    return alive


def end_session(session: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(session, signal.SIGKILL)


def measured_run(env: dict[str, str], phases: PhaseWatch, log: Path) -> tuple[Timeline, float]:
    process = start_backfill(env, log)
    phases.begin(process.pid)
    timeline = Timeline()
    started = time.monotonic()
    while process.poll() is None:
        timeline.add(time.monotonic() - started, phases.stages())
        time.sleep(0.002)
    length = time.monotonic() - started
    assert process.returncode == 0, log.read_text()
    return timeline, length


def warm_up(gateway: Any, data_dir: Path) -> None:
    """An unmeasured backfill first: the simulator makes each day on its first request, so a
    measured run on a cold gateway lists for longer than the runs killed after it, and kills
    aimed at its listing land in the fetching that follows."""
    warmed = backfill(DAYS[0], DAYS[-1], env=cli_env(gateway.url, gateway.token, data_dir))
    assert warmed.returncode == 0, warmed.stderr


def kill_moments(timeline: Timeline, kills: int, rng: random.Random) -> list[tuple[Stage, float]]:
    """Where to kill: the phases in turn, each of a random day, at a random moment within the
    time that stage lasted in the measured run (seconds after the run enters it; in its first 60 %,
    as a run a little faster than the measured one would already have left the rest)."""
    moments = []
    for k in range(kills):
        phase = PHASES[k % len(PHASES)]
        candidates = sorted(s for s in timeline.seen if s[0] == phase) or sorted(timeline.seen)
        stage = rng.choice(candidates)
        moments.append((stage, rng.uniform(0.0, 0.6 * timeline.length(stage))))
    return moments


# -- the sequence -------------------------------------------------------------------------------


@dataclass
class Kill:
    aimed: Stage
    after: float  # seconds after the run entered the stage aimed at
    hit: set[Stage]  # the stages under way when it was killed
    orphans: int  # processes of the run still alive half a second after the kill


@dataclass
class Sequence:
    kills: list[Kill]
    measured_seconds: float
    reader: dict[str, Any]
    leftovers: list[str]
    rerun: subprocess.CompletedProcess[str]
    expected: dict[str, str]
    final: dict[str, str]
    verify: subprocess.CompletedProcess[str]
    old: dict[date, Signature]
    new: dict[date, Signature]


def temp_files(data_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob(".*") if p.is_file())


def plant_decoys(data_dir: Path) -> None:
    """Temp files as a killed run of another process would leave them, with garbage inside."""
    for day in DAYS:
        raw = data_dir / "raw" / f"start_day={day}"
        (raw / f".sessions.ndjson.gz.{DECOY_PID}.tmp").write_bytes(b"\x1f\x8b garbage")
        (raw / f".sessions.ndjson.gz.{DECOY_PID}.bodies").write_bytes(b"\x1f\x8b garbage")
        for table in ("sessions", "session_events"):
            lake = data_dir / "lake" / table / f"start_day={day}"
            lake.mkdir(parents=True, exist_ok=True)
            (lake / f".part-0.parquet.{DECOY_PID}.tmp").write_bytes(b"PAR1 garbage")
    (data_dir / "manifests" / f".start_day={DAYS[0]}.json.{DECOY_PID}.tmp").write_bytes(b"{garbage")
    (data_dir / "warehouse.duckdb.tmp").write_bytes(b"garbage")


def kill_at(
    env: dict[str, str],
    log: Path,
    phases: PhaseWatch,
    order: list[Stage],
    aimed: Stage,
    after: float,
) -> Kill:
    process = start_backfill(env, log)
    phases.begin(process.pid)
    entered: float | None = None
    hit: set[Stage] = set()
    try:
        while process.poll() is None:
            hit = phases.stages()
            if entered is None and any(
                order.index(s) >= order.index(aimed) for s in hit if s in order
            ):
                entered = time.monotonic()
            if entered is not None and time.monotonic() - entered >= after:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        else:
            hit = {("finished", DAYS[-1])}
        process.wait()
        time.sleep(0.5)  # what the run left running gets a moment to notice and stop
        orphans = len(survivors(process.pid))
    finally:
        end_session(process.pid)
    return Kill(aimed, after, hit, orphans)


def crash_sequence(tmp: Path, kills: int) -> Sequence:
    rng = random.Random(20261122 + kills)
    log = tmp / "backfills.log"
    crashed, measured = tmp / "crashed", tmp / "measured"
    with serve(SimulatorConfig(start=FIRST_DAY, now=NOW, **OLD)) as gateway:
        old_run = backfill(DAYS[0], DAYS[-1], env=cli_env(gateway.url, gateway.token, crashed))
        assert old_run.returncode == 0, old_run.stderr
    old = signatures(crashed / "warehouse.duckdb")
    shutil.copytree(crashed, measured)
    with serve(SimulatorConfig(start=FIRST_DAY, now=NOW, **SHAPE)) as gateway:
        env = cli_env(gateway.url, gateway.token, crashed)
        warm_up(gateway, tmp / "warm")
        timeline, length = measured_run(
            cli_env(gateway.url, gateway.token, measured), PhaseWatch(gateway, measured), log
        )
        new = signatures(measured / "warehouse.duckdb")
        assert all(old[d] != new[d] for d in DAYS), "the two versions of a day cannot be told apart"

        stop, report = tmp / "reader.stop", tmp / "reader.json"
        reader = subprocess.Popen(
            [
                sys.executable,
                "-c",
                READER,
                str(crashed / "warehouse.duckdb"),
                str(stop),
                str(report),
                SIGNATURE_SQL,
            ],
            start_new_session=True,
        )
        done: list[Kill] = []
        phases = PhaseWatch(gateway, crashed)
        order = sorted(timeline.seen, key=lambda s: timeline.seen[s][0])
        try:
            for aimed, after in kill_moments(timeline, kills, rng):
                done.append(kill_at(env, log, phases, order, aimed, after))
            leftovers = temp_files(crashed)
            plant_decoys(crashed)
            rerun = backfill(DAYS[0], DAYS[-1], "--redo", env=env)
        finally:
            stop.touch()
            try:
                reader.wait(60)
            finally:
                end_session(reader.pid)
        verify = run_cli("verify", "--start", str(DAYS[0]), "--end", str(DAYS[-1]), env=env)
        return Sequence(
            kills=done,
            measured_seconds=length,
            reader=json.loads(report.read_text()),
            leftovers=leftovers,
            rerun=rerun,
            expected=content_hash(measured / "warehouse.duckdb"),
            final=content_hash(crashed / "warehouse.duckdb"),
            verify=verify,
            old=old,
            new=new,
        )


def describe(kills: list[Kill]) -> str:
    return "; ".join(
        f"aimed {k.aimed[0]} {k.aimed[1]:%d} +{k.after:.3f}s, hit {sorted(f'{p} {d:%d}' for p, d in k.hit)}"
        f"{f', {k.orphans} process(es) left running' if k.orphans else ''}"
        for k in kills
    )


def assert_the_rerun_equals_an_uninterrupted_run(sequence: Sequence) -> None:
    assert sequence.rerun.returncode == 0, sequence.rerun.stderr
    assert "Traceback" not in sequence.rerun.stderr
    # The kills landed in every phase of a day (not in the start-up of Python).
    hit = {phase for k in sequence.kills for phase, _ in k.hit}
    assert hit >= set(PHASES), describe(sequence.kills)
    assert sequence.final == sequence.expected, describe(sequence.kills)


def assert_the_reader_saw_each_day_old_or_new_and_reconciled(sequence: Sequence) -> None:
    reader = sequence.reader
    assert reader["errors"] == []
    assert reader["reads"] >= 20, reader
    versions: dict[str, int] = {}
    for key, count in reader["seen"].items():
        day_text, *values = json.loads(key)
        day = date.fromisoformat(day_text)
        sig = tuple(values)
        version = (
            "old"
            if sig == sequence.old.get(day)
            else "new"
            if sig == sequence.new.get(day)
            else None
        )
        assert version is not None, f"{day}: neither the old nor the new version: {sig}"
        sessions, _, _, _, listed, loaded, rejected, _ = (
            int(v) if v and v.isdigit() else v for v in sig
        )
        assert listed == loaded + rejected and sessions == loaded, (
            f"{day}: counts do not reconcile: {sig}"
        )
        versions[version] = versions.get(version, 0) + count
    # It saw both versions, or its checks proved nothing.
    assert versions.get("old") and versions.get("new"), versions


def assert_verify_is_clean(sequence: Sequence) -> None:
    assert sequence.verify.returncode == 0, sequence.verify.stdout + sequence.verify.stderr
    assert f"{len(DAYS)} day(s) verified" in sequence.verify.stdout


# One test per sequence, not one per claim: each sequence takes a minute or more.
@pytest.mark.parametrize(
    "kills",
    [pytest.param(6, id="6-kills"), pytest.param(20, id="20-kills", marks=pytest.mark.reliability)],
)
def test_a_backfill_killed_at_random_moments_converges_verifies_clean_and_never_shows_half_a_day(
    kills, tmp_path
):
    """The rerun ends identical to an uninterrupted run, temp files of the killed runs (and decoys
    planted before the rerun) do not disturb it, `hoop-sessions verify` finds every file as its
    manifest says, and the reader saw each day old or new, reconciled, all along."""
    sequence = crash_sequence(tmp_path, kills)
    print(
        f"uninterrupted run {sequence.measured_seconds:.1f} s; kills: {describe(sequence.kills)}; "
        f"reader: {sequence.reader['reads']} reads, {sequence.reader['refused']} refused; "
        f"temp files left: {sequence.leftovers}"
    )
    assert_the_rerun_equals_an_uninterrupted_run(sequence)
    assert_the_reader_saw_each_day_old_or_new_and_reconciled(sequence)
    assert_verify_is_clean(sequence)


def test_a_backfill_killed_with_sigkill_leaves_no_process_behind(tmp_path):
    with serve(SimulatorConfig(start=FIRST_DAY, now=NOW, **SMALL)) as gateway:
        data = tmp_path / "data"
        phases = PhaseWatch(gateway, data)
        process = start_backfill(cli_env(gateway.url, gateway.token, data), tmp_path / "log")
        phases.begin(process.pid)
        try:
            # Kill it once day 1 is handed to the build and load while day 2 is read.
            while process.poll() is None and not any(day > DAYS[0] for _, day in phases.stages()):
                time.sleep(0.002)
            process.send_signal(signal.SIGKILL)
            process.wait()
            deadline = time.monotonic() + 5
            while survivors(process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            left = survivors(process.pid)
        finally:
            end_session(process.pid)
    assert left == [], f"processes of the killed run still alive 5 s later: {left}"


def test_a_sync_killed_between_reading_a_day_and_loading_it_loads_the_day_on_the_next_incremental_run(
    tmp_path,
):
    from datetime import UTC, datetime
    from datetime import time as clock

    # The old version is read a minute after the last day ended, while its sessions were still
    # open, so the next (incremental) backfill reads that day again.
    just_after = datetime.combine(DAYS[-1] + timedelta(days=1), clock(0, 1), tzinfo=UTC)
    data, fresh = tmp_path / "data", tmp_path / "fresh"
    with serve(SimulatorConfig(start=FIRST_DAY, now=just_after, **SMALL)) as gateway:
        env = cli_env(gateway.url, gateway.token, data)
        args = ("backfill", "--start", str(DAYS[0]), "--end", str(DAYS[-1]))
        assert run_cli(*args, env=env).returncode == 0
        old = content_hash(data / "warehouse.duckdb", day=DAYS[-1])
        gateway.set_now(NOW)
        assert run_cli(*args, env=cli_env(gateway.url, gateway.token, fresh)).returncode == 0
        new = content_hash(fresh / "warehouse.duckdb", day=DAYS[-1])
        assert old != new

        process = subprocess.Popen(
            [sys.executable, "-m", "hoop_sessions", *args],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        started = time.time_ns()
        raw = data / "raw" / f"start_day={DAYS[-1]}" / "sessions.ndjson.gz"
        try:
            while process.poll() is None and raw.stat().st_mtime_ns < started:
                time.sleep(0.001)
            process.send_signal(signal.SIGKILL)
            process.wait()
        finally:
            end_session(process.pid)
        assert raw.stat().st_mtime_ns >= started, "the run ended before it replaced the raw file"
        assert content_hash(data / "warehouse.duckdb", day=DAYS[-1]) == old, (
            "the kill came after the load"
        )

        rerun = run_cli(*args, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert content_hash(data / "warehouse.duckdb", day=DAYS[-1]) == new, rerun.stdout
