"""The contenders and the extra measurements, each run in its own measured process.

Every contender reads the same simulated gateway (same seed, days, clock), with the same
concurrency, into a fresh data folder. Figures other than time and memory (requests sent,
sessions read) come from each contender's own account: the sync's ``sync_windows`` ledger, the
floor's and dlt's JSON line on standard output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from benchmarks.gateway import RunningGateway, Workload
from benchmarks.measure import ProcessRun, run_measured

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent


@dataclass
class Result:
    """One row of a results table."""

    name: str
    status: str  # ok, failed, not run
    wall_s: float | None = None
    cpu_s: float | None = None
    user_s: float | None = None
    sys_s: float | None = None
    peak_rss_mib: float | None = None
    requests: int | None = None
    sessions: int | None = None
    server_cpu_s: float | None = None
    rss_thirds_mib: tuple[float, float, float] | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def requests_per_s(self) -> float | None:
        if self.requests is None or not self.wall_s:
            return None
        return self.requests / self.wall_s

    @property
    def sessions_per_s(self) -> float | None:
        if self.sessions is None or not self.wall_s:
            return None
        return self.sessions / self.wall_s

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["requests_per_s"] = self.requests_per_s
        doc["sessions_per_s"] = self.sessions_per_s
        return doc

    @classmethod
    def measured(cls, name: str, run: ProcessRun, server_cpu_s: float | None = None) -> Result:
        return cls(
            name=name,
            status="ok" if run.ok else "failed",
            wall_s=run.wall_s,
            cpu_s=run.cpu_s,
            user_s=run.user_s,
            sys_s=run.sys_s,
            peak_rss_mib=max(run.peak_rss_mib, run.peak_tree_rss_mib),
            server_cpu_s=server_cpu_s,
            rss_thirds_mib=run.rss_by_third(),
            note="" if run.ok else f"exit {run.returncode}: {run.tail(8)}",
            extra={
                "largest_process_rss_mib": run.peak_rss_mib,
                "tree_rss_mib": run.peak_tree_rss_mib,
            },
        )


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has used so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
        fields = fh.read().rsplit(b")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"hoop-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _env(gw: RunningGateway, data_dir: Path, concurrency: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        # A developer's own settings must not leak into the measurement.
        if not k.startswith(("HOOP_", "DLT_", "EXTRACT__", "NORMALIZE__", "LOAD__"))
    }
    env.update(
        HOOP_API_URL=gw.url,
        HOOP_API_TOKEN=gw.token,
        HOOP_DATA_DIR=str(data_dir),
        HOOP_CONCURRENCY=str(concurrency),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def hoop_sessions_argv() -> list[str]:
    """The installed ``hoop-sessions`` command beside this interpreter (as users run it)."""
    script = Path(sys.executable).parent / "hoop-sessions"
    return [str(script)] if script.exists() else [sys.executable, "-m", "hoop_sessions"]


def _last_json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return dict(json.loads(line))
    return {}


def _measured(
    name: str, argv: list[str], env: dict[str, str], gw: RunningGateway, timeout_s: float
) -> tuple[Result, ProcessRun]:
    before = process_cpu_s(gw.pid)
    load_before = os.getloadavg()[0]
    run = run_measured(argv, env=env, cwd=REPO_DIR, timeout_s=timeout_s)
    result = Result.measured(name, run, server_cpu_s=process_cpu_s(gw.pid) - before)
    # The 1-minute load average before and after: on a shared machine, the context of a figure.
    result.extra["loadavg"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result, run


def ledger_counts(warehouse: Path) -> tuple[int, int, int]:
    """(requests, sessions loaded, days) from the sync's own ledger; +1 request: the preflight."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        row = con.execute(
            "SELECT coalesce(sum(requests), 0), coalesce(sum(sessions_loaded), 0), "
            "count(DISTINCT start_day) FROM sync_windows"
        ).fetchone()
    assert row is not None
    return int(row[0]) + 1, int(row[1]), int(row[2])


FLOOR_NAMES = {
    "httpx": "floor (fetch only)",
    "lanes": "lanes floor (fetch only, the sync's HTTP layer)",
}


def run_floor(
    gw: RunningGateway,
    workload: Workload,
    *,
    concurrency: int,
    timeout_s: float,
    transport: str = "httpx",
) -> Result:
    with scratch_dir("floor") as data:
        argv = [
            sys.executable,
            "-m",
            "benchmarks.floor",
            "--start",
            workload.start.isoformat(),
            "--end",
            workload.end.isoformat(),
            "--concurrency",
            str(concurrency),
            "--transport",
            transport,
        ]
        result, run = _measured(
            FLOOR_NAMES[transport], argv, _env(gw, data, concurrency), gw, timeout_s
        )
    doc = _last_json_line(run.stdout)
    result.requests, result.sessions = doc.get("requests"), doc.get("sessions")
    result.extra["bytes"] = doc.get("bytes")
    return result


def run_sync_backfill(
    gw: RunningGateway,
    workload: Workload,
    data: Path,
    *,
    concurrency: int,
    timeout_s: float,
    name: str = "hoop-sessions backfill",
    pythonpath: Path | None = None,
) -> Result:
    """``hoop-sessions backfill`` of the workload; with ``pythonpath``, the package found there
    (an older version's ``src``) instead of the installed one."""
    command = (
        hoop_sessions_argv() if pythonpath is None else [sys.executable, "-m", "hoop_sessions"]
    )
    argv = _backfill_argv(command, workload)
    env = _env(gw, data, concurrency)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    result, _ = _measured(name, argv, env, gw, timeout_s)
    if result.status == "ok":
        result.requests, result.sessions, days = ledger_counts(data / "warehouse.duckdb")
        result.extra["days"] = days
    return result


def _backfill_argv(command: list[str], workload: Workload) -> list[str]:
    """``backfill --redo`` of the workload's days: every contender syncs the same way."""
    return [
        *command,
        "backfill",
        "--start",
        workload.start.isoformat(),
        "--end",
        workload.end.isoformat(),
        "--redo",
    ]


S3_NAME = "loopback S3 (hoop-sessions backfill into s3://)"


def run_sync_to_store(
    gw: RunningGateway,
    workload: Workload,
    store: Any,
    work: Path,
    *,
    concurrency: int,
    timeout_s: float,
) -> Result:
    """The same backfill as ``run_sync_backfill``, with ``HOOP_DATA_DIR`` a fresh bucket of the
    loopback S3 server ``store`` (tests.s3.server.S3Server, in a process of its own) and ``work``
    the local working directory. The server's CPU is reported beside the run's own."""
    url = store.new_bucket("hoop")
    argv = _backfill_argv(hoop_sessions_argv(), workload)
    env = {k: v for k, v in _env(gw, work, concurrency).items() if not k.startswith("AWS_")}
    env.update(HOOP_DATA_DIR=url, HOOP_WORK_DIR=str(work), **store.env())
    server_before = process_cpu_s(store.process.pid)
    try:
        result, _ = _measured(S3_NAME, argv, env, gw, timeout_s)
        result.extra["store_server_cpu_s"] = process_cpu_s(store.process.pid) - server_before
        if result.status == "ok":
            result.requests, result.sessions, days = ledger_counts(work / "warehouse.duckdb")
            result.extra["days"] = days
            result.extra["store_objects"], result.extra["store_mib"] = _bucket_size(store, url)
    finally:
        _drop_bucket(store, url)  # the server keeps objects in memory: one run's at a time
    return result


def _bucket_size(store: Any, url: str) -> tuple[int, float]:
    bucket = url.removeprefix("s3://").split("/", 1)[0]
    count, size = 0, 0
    for page in store.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            count, size = count + 1, size + obj["Size"]
    return count, size / 2**20


def _drop_bucket(store: Any, url: str) -> None:
    bucket = url.removeprefix("s3://").split("/", 1)[0]
    client = store.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=bucket)


# `hoop-sessions sync` reports a day as "listed N, ..." or, past the rolling window, as "not listed
# again (...): N sessions as listed before, M not final read again by id, ...".
_DAY_LINE = re.compile(
    r"^(?P<day>\d{4}-\d{2}-\d{2}): (?:listed |not listed again \([^)]*\): )(?P<listed>\d+)(?P<rest>.*)$"
)
_REQUESTS = re.compile(r"(\d+) requests")


def nightly_report(stdout: str) -> dict[str, int]:
    """Days, sessions they hold, requests, days rebuilt and days not listed, from the sync's report."""
    out = dict.fromkeys(("days", "sessions", "requests", "rebuilt", "not_listed"), 0)
    for line in stdout.splitlines():
        match = _DAY_LINE.match(line.strip())
        if not match:
            continue
        out["days"] += 1
        out["sessions"] += int(match["listed"])
        out["rebuilt"] += "nothing changed" not in match["rest"]
        out["not_listed"] += "not listed again" in line
        if count := _REQUESTS.search(match["rest"]):
            out["requests"] += int(count.group(1))
    return out


def run_sync_nightly(
    gw: RunningGateway,
    data: Path,
    *,
    concurrency: int,
    timeout_s: float,
    first_day: date | None = None,
    name: str = "hoop-sessions sync (nothing new)",
    pythonpath: Path | None = None,
) -> Result:
    """``hoop-sessions sync`` on a warehouse just backfilled: nothing is new on the gateway.

    ``first_day`` is the first partition day (HOOP_SYNC_START_DATE): the backfill's first day, so
    that the warehouse is fully synced and the nightly has nothing to catch up. With
    ``pythonpath``, the package found there (an older version's ``src``) runs instead.
    """
    argv = [
        *(hoop_sessions_argv() if pythonpath is None else [sys.executable, "-m", "hoop_sessions"]),
        "sync",
    ]
    env = _env(gw, data, concurrency)
    if first_day is not None:
        env["HOOP_SYNC_START_DATE"] = first_day.isoformat()
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    result, run = _measured(name, argv, env, gw, timeout_s)
    if result.status == "ok":
        # Its own report, one line a day: a day in which nothing changed is neither rebuilt nor
        # reloaded, so the ledger does not show it; the report does.
        report = nightly_report(run.stdout)
        result.requests = report["requests"] + 1  # and the preflight
        result.sessions = report["sessions"]
        result.extra.update(
            days_synced=report["days"],
            days_rebuilt=report["rebuilt"],
            days_not_listed=report["not_listed"],
        )
        plan = next((ln for ln in run.stderr.splitlines() if ln.startswith("syncing ")), "")
        result.extra["plan"] = plan.strip()
    return result


def run_dlt(
    gw: RunningGateway, workload: Workload, *, concurrency: int, timeout_s: float
) -> Result:
    from benchmarks.dlt_env import DLT_REQUIREMENT, DltUnavailable, ensure_dlt

    name = "dlt (rest_api → duckdb)"
    try:
        python = ensure_dlt()
    except DltUnavailable as exc:
        return Result(name=name, status="not run", note=f"dlt could not be installed: {exc}")
    with scratch_dir("dlt") as data:
        argv = [
            str(python),
            str(BENCH_DIR / "dlt_job.py"),
            "--start",
            workload.start.isoformat(),
            "--end",
            workload.end.isoformat(),
            "--concurrency",
            str(concurrency),
        ]
        result, run = _measured(name, argv, _env(gw, data, concurrency), gw, timeout_s)
    doc = _last_json_line(run.stdout)
    result.requests, result.sessions = doc.get("requests"), doc.get("sessions")
    result.extra["events"] = doc.get("events")
    result.extra["requirement"] = DLT_REQUIREMENT
    return result
