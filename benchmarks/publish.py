"""What publishing the warehouse for analysts costs as it grows: seconds, file size, peak RSS.

The writer's copy (``<dir>/.writer/warehouse.duckdb``) is generated in DuckDB at the contract's
schema by the compliance pack's generator (``benchmarks.compliance_pack.generate``: a year of
sessions, the simulator's mix of connections, reviews, review groups and two connection tags per
session, ``--events-per-session`` events of a few dozen bytes each). Then
``hoop_sessions.warehouse.snapshot.publish`` runs ``--repeat`` times, each in a process of its own, measured
by ``benchmarks.measure`` (wall time) and by its own ``VmHWM`` (peak RSS). From the second publish on, an analyst process
holds a read-only connection to the published file, as in production.

Run as ``python -m benchmarks.publish --sessions N [--events-per-session M] [--dir PATH]``; it
prints one JSON line.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson

from benchmarks.compliance_pack import generate
from benchmarks.measure import run_measured
from hoop_sessions.config import Settings
from hoop_sessions.warehouse import load as warehouse

MIB = 2**20

# One publish and nothing else imported (this module imports the generator, Arrow with it). Its
# peak RSS is VmHWM of its own address space: the kernel's ru_maxrss of a child also counts the
# pages it shared with this (large) process between fork and exec.
_PUBLISH = (
    "import sys, orjson\n"
    "from pathlib import Path\n"
    "from hoop_sessions.config import Settings\n"
    "from hoop_sessions.sync.run import publish_warehouse\n"
    "url = sys.argv[2] if len(sys.argv) > 2 else None\n"
    "result = publish_warehouse(Settings(data_dir=Path(sys.argv[1]), data_url=url))\n"
    "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n"
    "sys.stdout.write(orjson.dumps(\n"
    "    {'bytes': result.bytes, 'seconds': result.seconds, 'hwm_kib': int(hwm)}).decode())\n"
)

# Holds the published file open read-only until its standard input closes.
_ANALYST = (
    "import sys, duckdb\n"
    "con = duckdb.connect(sys.argv[1], read_only=True)\n"
    "con.execute('SELECT count(*) FROM sessions').fetchall()\n"
    "print('ready', flush=True)\n"
    "sys.stdin.read()\n"
)


def build(data_dir: Path, *, sessions: int, events_per_session: int) -> dict[str, Any]:
    settings = Settings(data_dir=data_dir)
    settings.ensure_data_dir()
    path = settings.load_path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    with duckdb.connect(str(path)) as con:
        generate(con, sessions=sessions, events=sessions * events_per_session)
        rows = warehouse.table_counts(con)
    return {
        "generate_s": round(time.perf_counter() - started, 1),
        "rows": rows,
        "file_mib": round(path.stat().st_size / MIB, 1),
    }


def publish_once(data_dir: Path, url: str | None = None) -> dict[str, Any]:
    """One publish (with ``url``, also the upload to that store), in a measured process."""
    run = run_measured(
        [sys.executable, "-c", _PUBLISH, str(data_dir), *([url] if url else [])],
        env=os.environ,
    )
    if not run.ok:
        raise SystemExit(f"publish failed:\n{run.tail()}")
    result = orjson.loads(run.stdout)
    return {
        "publish_s": round(result["seconds"], 2),
        "process_wall_s": round(run.wall_s, 2),
        "peak_rss_mib": round(result["hwm_kib"] / 1024, 1),
        "published_mib": round(result["bytes"] / MIB, 1),
    }


def measure(
    data_dir: Path, *, sessions: int, events_per_session: int, repeat: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"sessions": sessions, "events_per_session": events_per_session}
    out.update(build(data_dir, sessions=sessions, events_per_session=events_per_session))
    out["publishes"] = [publish_once(data_dir)]
    analyst = subprocess.Popen(
        [sys.executable, "-c", _ANALYST, str(Settings(data_dir=data_dir).warehouse_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert analyst.stdout is not None and analyst.stdout.readline().strip() == "ready"
        for _ in range(repeat - 1):
            out["publishes"].append(publish_once(data_dir))
    finally:
        assert analyst.stdin is not None
        analyst.stdin.close()
        analyst.wait(timeout=60)
    return out


def measure_store(data_dir: Path, *, repeat: int) -> dict[str, Any]:
    """The same publish with an S3 store on loopback (moto, its own process): the local copy,
    then the upload; and a restore of the uploaded file into an empty working directory."""
    from benchmarks.restore import step
    from tests.s3.server import s3_server

    with s3_server() as server:
        os.environ.update(server.env())
        url = server.new_bucket()
        runs = [publish_once(data_dir, url)]
        for _ in range(repeat - 1):
            # Each publish starts from what this directory restored: the generation it knows.
            runs.append(publish_once(data_dir, url))
        restore = step("restore_warehouse", data_dir.parent / "restored", url, dict(os.environ))
    return {"store_publishes": runs, "store_restore": restore}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="time publishing the warehouse for analysts")
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--events-per-session", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="publishes to time")
    parser.add_argument("--dir", type=Path, help="data directory to build in (default: a temp one)")
    parser.add_argument(
        "--store",
        action="store_true",
        help="also publish to an S3 server on loopback and restore from it",
    )
    args = parser.parse_args(argv)
    options = {
        "sessions": args.sessions,
        "events_per_session": args.events_per_session,
        "repeat": max(args.repeat, 1),
    }
    with tempfile.TemporaryDirectory(prefix="hoop-bench-publish-") as tmp:
        data_dir = args.dir or Path(tmp) / "data"
        doc = measure(data_dir, **options)
        if args.store:
            doc.update(measure_store(data_dir, repeat=options["repeat"]))
    sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
