"""A worker with no local state: restoring the warehouse from the store against rebuilding it.

A backfill of ``--days`` x ``--sessions-per-day`` from the local gateway into a bucket of an S3
server on loopback (moto, its own process); then, each in a new empty working directory and a
process of its own, (a) ``mirror.restore_warehouse`` downloads ``warehouse.duckdb``, and (b)
``mirror.rebuild_warehouse`` pulls every day's lake files and loads them. Both end with a
warehouse holding every day (checked); their wall time and peak RSS (VmHWM) are printed as one
JSON line, beside the bytes each moved.

Run as ``python -m benchmarks.restore [--days N] [--sessions-per-day M]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from benchmarks.measure import run_measured
from hoop_sessions.config import Secret, Settings
from hoop_sessions.simulator import SimulatorConfig, serve
from hoop_sessions.sync.run import backfill_days, sync_days
from tests.s3.server import s3_server

_STEP = (
    "import sys, orjson, duckdb\n"
    "from pathlib import Path\n"
    "from hoop_sessions.sync import mirror\n"
    "from hoop_sessions.config import Settings\n"
    "s = Settings(data_dir=Path(sys.argv[2]), data_url=sys.argv[3])\n"
    "s.ensure_data_dir()\n"
    "getattr(mirror, sys.argv[1])(s)\n"
    "with duckdb.connect(str(s.load_path), read_only=True) as con:\n"
    "    days = con.execute('SELECT count(DISTINCT start_day), count(*) FROM sessions').fetchone()\n"
    "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n"
    "sys.stdout.write(orjson.dumps({'days': days[0], 'sessions': days[1], 'hwm_kib': int(hwm),\n"
    "    'file_bytes': s.load_path.stat().st_size}).decode())\n"
)


def step(name: str, work: Path, url: str, env: dict[str, str]) -> dict[str, Any]:
    run = run_measured([sys.executable, "-c", _STEP, name, str(work), url], env=env)
    if not run.ok:
        raise SystemExit(f"{name} failed:\n{run.tail()}")
    doc = orjson.loads(run.stdout)
    return {
        "wall_s": round(run.wall_s, 2),
        "peak_rss_mib": round(doc["hwm_kib"] / 1024, 1),
        "days": doc["days"],
        "sessions": doc["sessions"],
        "warehouse_mib": round(doc["file_bytes"] / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="restore vs rebuild of the warehouse from a store")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--sessions-per-day", type=int, default=300)
    args = parser.parse_args(argv)
    first = date(2026, 1, 1)
    last = first + timedelta(days=args.days - 1)
    now = datetime.combine(last + timedelta(days=2), datetime.min.time(), UTC)
    out: dict[str, Any] = {"days": args.days, "sessions_per_day": args.sessions_per_day}
    with s3_server() as server, tempfile.TemporaryDirectory(prefix="hoop-bench-restore-") as tmp:
        env = {**os.environ, **server.env()}
        os.environ.update(server.env())
        url = server.new_bucket()
        config = SimulatorConfig(
            days=args.days + 1, sessions_per_day=args.sessions_per_day, seed=7, start=first, now=now
        )
        with serve(config) as gateway:
            settings = Settings(
                api_url=gateway.url,
                api_token=Secret(gateway.token),
                data_dir=Path(tmp) / "backfill",
                data_url=url,
            )
            plan = backfill_days(settings, first, last, now=now)
            result = sync_days(settings, plan.days, now=now, relist=plan.relist)
            if result.failed:
                raise SystemExit(f"backfill failed: {result.failed}")
        lake = settings.store.list("lake/") if settings.store else {}
        out["lake_mib"] = round(sum(o.size for o in lake.values()) / 2**20, 1)
        out["restore"] = step("restore_warehouse", Path(tmp) / "restore", url, env)
        out["rebuild"] = step("rebuild_warehouse", Path(tmp) / "rebuild", url, env)
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
