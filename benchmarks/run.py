"""``make bench``: the sync against a fetch-only floor and dlt, on the same simulated gateway.

Starts the simulator in its own process with a realistic workload, runs each contender in its own
measured process against it, then the extra measurements (nightly run with nothing new, one
session with a 100 MiB stream, the compliance pack on a million sessions), prints markdown tables
and writes ``benchmarks/results/latest.json``.

    python -m benchmarks.run                      # the default workload, everything
    python -m benchmarks.run --quick              # a tiny run (the smoke test uses it)
    python -m benchmarks.run --only sync,floor --no-extras
    python -m benchmarks.run --help
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

from benchmarks.contenders import (
    BENCH_DIR,
    REPO_DIR,
    Result,
    run_dlt,
    run_floor,
    run_sync_backfill,
    run_sync_nightly,
    run_sync_to_store,
    scratch_dir,
)
from benchmarks.gateway import Workload, gateway, large_day_gateway
from benchmarks.report import markdown_report, targets

# sync-s3: the same backfill into a bucket of an S3 server on loopback (moto, its own process).
# sync-baseline: the same backfill run by the code of --baseline-ref, side by side.
CONTENDERS = ("floor", "floor-lanes", "sync", "sync-baseline", "sync-s3", "dlt")
# Days of very large sessions, each measured with this code and with BASELINE_REF's.
MEMORY_ROWS = ("ten-streams", "rdp")
# The last commit before a day's events were written as they are built and the reader's
# finished bodies were held to a byte budget: the "before" of the memory rows.
BASELINE_REF = "487afcd"


@dataclass(frozen=True)
class Sizes:
    days: int
    sessions_per_day: int
    latency_ms: float
    large_stream_mib: float
    large_day_sessions: int
    compliance_sessions: int
    compliance_events: int
    ten_streams: tuple[int, float] = (10, 100.0)  # sessions, MiB each
    rdp_mib: float = 128.0


DEFAULT = Sizes(
    days=7,
    sessions_per_day=2000,
    latency_ms=10.0,
    large_stream_mib=100.0,
    large_day_sessions=200,
    compliance_sessions=1_000_000,
    compliance_events=20_000_000,
)
QUICK = Sizes(
    days=2,
    sessions_per_day=25,
    latency_ms=1.0,
    large_stream_mib=1.0,
    large_day_sessions=5,
    compliance_sessions=1_000,
    compliance_events=20_000,
    ten_streams=(3, 1.0),
    rdp_mib=1.0,
)


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes everywhere (seconds, not minutes)"
    )
    p.add_argument("--days", type=int, help=f"simulated UTC days (default {DEFAULT.days})")
    p.add_argument("--sessions-per-day", type=int, help=f"default {DEFAULT.sessions_per_day}")
    p.add_argument(
        "--events-per-session",
        type=int,
        default=30,
        help="asked of the simulator when it has that knob (default 30)",
    )
    p.add_argument("--latency-ms", type=float, help=f"per request (default {DEFAULT.latency_ms:g})")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="rounds of every contender; the table shows each one's fastest run",
    )
    p.add_argument(
        "--only",
        default=",".join(c for c in CONTENDERS + MEMORY_ROWS if c != "sync-baseline"),
        help=f"contenders and memory rows to run, comma-separated from "
        f"{','.join(CONTENDERS + MEMORY_ROWS)} (ten-streams: a day of ten 100 MiB "
        "streams; rdp: a day with one 128 MiB RDP recording)",
    )
    p.add_argument(
        "--baseline-ref",
        default=BASELINE_REF,
        help="git commit whose src/ the memory rows also run, side by side "
        f"(default {BASELINE_REF}); 'none' skips it",
    )
    p.add_argument(
        "--no-extras", action="store_true", help="skip nightly, large stream and compliance"
    )
    p.add_argument(
        "--nightly",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure `hoop-sessions sync` right after the backfill (needs the sync)",
    )
    p.add_argument(
        "--large-stream",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure a day holding one session with a huge stream",
    )
    p.add_argument("--large-stream-mib", type=float, help=f"default {DEFAULT.large_stream_mib:g}")
    p.add_argument(
        "--compliance",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time the compliance pack on a generated warehouse",
    )
    p.add_argument(
        "--compliance-sessions", type=int, help=f"default {DEFAULT.compliance_sessions:,}"
    )
    p.add_argument("--compliance-events", type=int, help=f"default {DEFAULT.compliance_events:,}")
    p.add_argument(
        "--compliance-db", type=Path, help="keep (and reuse) the generated warehouse here"
    )
    p.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds allowed to one measured run"
    )
    p.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "latest.json")
    args = p.parse_args(argv)
    base = QUICK if args.quick else DEFAULT
    args.days = args.days or base.days
    args.sessions_per_day = args.sessions_per_day or base.sessions_per_day
    args.latency_ms = base.latency_ms if args.latency_ms is None else args.latency_ms
    args.large_stream_mib = args.large_stream_mib or base.large_stream_mib
    args.large_day_sessions = base.large_day_sessions
    args.compliance_sessions = args.compliance_sessions or base.compliance_sessions
    args.compliance_events = args.compliance_events or base.compliance_events
    args.ten_streams, args.rdp_mib = base.ten_streams, base.rdp_mib
    chosen = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(chosen) - set(CONTENDERS + MEMORY_ROWS)
    if unknown:
        p.error(f"unknown contender(s) {sorted(unknown)}; choose from {CONTENDERS + MEMORY_ROWS}")
    args.only = [c for c in chosen if c in CONTENDERS]
    args.memory_rows = [c for c in chosen if c in MEMORY_ROWS]
    if args.no_extras:
        args.nightly = args.large_stream = args.compliance = False
    return args


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model
            )
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _workload(
    args: argparse.Namespace, *, days: int, sessions_per_day: int, **extra: Any
) -> Workload:
    # Data ends yesterday (UTC) and the gateway's clock stands still at 02:00 today, as when the
    # nightly job runs: `hoop-sessions sync` picks its days from the real date.
    today = datetime.now(UTC).date()
    return Workload(
        start=today - timedelta(days=days),
        days=days,
        sessions_per_day=sessions_per_day,
        now=datetime.combine(today, dtime(2, 0), tzinfo=UTC),
        latency_ms=args.latency_ms,
        seed=args.seed,
        events_per_session=args.events_per_session,
        **extra,
    )


def _best(results: list[Result]) -> Result:
    """The fastest successful run. On a shared machine other work only ever adds time, so the
    minimum is the figure least disturbed by it; every run's wall time is kept beside it."""
    ok = [r for r in results if r.status == "ok"]
    if not ok:
        return results[-1]
    chosen = min(ok, key=lambda r: r.wall_s or 0.0)
    if len(results) > 1:
        chosen.extra["walls_s"] = [r.wall_s for r in results]
        chosen.extra["cpus_s"] = [r.cpu_s for r in results]
    return chosen


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_contenders(args: argparse.Namespace, out: dict[str, Any]) -> None:
    workload = _workload(args, days=args.days, sessions_per_day=args.sessions_per_day)
    out["workload"] = {
        "start": workload.start.isoformat(),
        "end": workload.end.isoformat(),
        "days": workload.days,
        "sessions_per_day": workload.sessions_per_day,
        "latency_ms": workload.latency_ms,
        "gateway_clock": workload.now.isoformat(),
        "concurrency": args.concurrency,
        "seed": args.seed,
        "events_per_session_requested": args.events_per_session,
    }
    with gateway(workload) as gw:
        _log(f"simulator at {gw.url}: {workload.days} days x {workload.sessions_per_day} sessions")
        # One unmeasured pass of the floor first: the simulator generates each day on first use,
        # and that cost must not fall on whichever contender happens to run first.
        if args.only:
            _log("warm-up pass (not measured)")
            run_floor(gw, workload, concurrency=args.concurrency, timeout_s=args.timeout)
        sync_data: Path | None = None
        runs: dict[str, list[Result]] = {name: [] for name in args.only}
        with contextlib.ExitStack() as stack:
            sync_dir = stack.enter_context(scratch_dir("sync"))
            store = None
            # The baseline's code, extracted once for the contender and the nightly that run it.
            baseline_src = (
                stack.enter_context(baseline_checkout(args.baseline_ref))
                if args.baseline_ref != "none" and ("sync-baseline" in args.only or args.nightly)
                else None
            )
            if "sync-s3" in args.only:
                from tests.s3.server import s3_server

                store = stack.enter_context(s3_server())
                _log(f"S3 server (moto) at {store.endpoint}, pid {store.process.pid}")
            # Rounds rather than one contender's repeats in a row: on a shared machine the load
            # drifts, and interleaving spreads the drift over every contender alike.
            for i in range(args.repeat):
                for name in args.only:
                    if runs[name] and runs[name][-1].status == "not run":
                        continue
                    _log(f"{name}: run {i + 1}/{args.repeat}")
                    if name in ("floor", "floor-lanes"):
                        result = run_floor(
                            gw,
                            workload,
                            concurrency=args.concurrency,
                            timeout_s=args.timeout,
                            transport="lanes" if name == "floor-lanes" else "httpx",
                        )
                    elif name == "sync":
                        sync_data = sync_dir / f"run-{i}"
                        result = run_sync_backfill(
                            gw,
                            workload,
                            sync_data,
                            concurrency=args.concurrency,
                            timeout_s=args.timeout,
                        )
                    elif name == "sync-baseline":
                        if baseline_src is None:
                            result = Result(name, "not run", note="--baseline-ref none")
                        else:
                            result = run_sync_backfill(
                                gw,
                                workload,
                                sync_dir / f"baseline-{i}",
                                concurrency=args.concurrency,
                                timeout_s=args.timeout,
                                pythonpath=baseline_src,
                                name=f"hoop-sessions backfill, baseline {args.baseline_ref}",
                            )
                    elif name == "sync-s3":
                        with scratch_dir("sync-s3") as work:
                            result = run_sync_to_store(
                                gw,
                                workload,
                                store,
                                work / "work",
                                concurrency=args.concurrency,
                                timeout_s=args.timeout,
                            )
                    else:
                        result = run_dlt(
                            gw, workload, concurrency=args.concurrency, timeout_s=args.timeout
                        )
                    runs[name].append(result)
                    _log(
                        f"{name}: {result.status}, {result.wall_s or 0:.1f} s wall, "
                        f"{result.cpu_s or 0:.1f} s CPU, load average {result.extra.get('loadavg')}"
                    )
            results = {name: _best(r) for name, r in runs.items()}
            if args.nightly:
                if sync_data is not None and results["sync"].status == "ok":
                    _log("nightly sync with nothing new")
                    nightly = run_sync_nightly(
                        gw,
                        sync_data,
                        concurrency=args.concurrency,
                        timeout_s=args.timeout,
                        first_day=workload.start,
                    )
                    full = results["sync"]
                    if full.wall_s and nightly.wall_s:
                        nightly.extra["share_of_a_full_day"] = nightly.wall_s / (
                            full.wall_s / workload.days
                        )
                    out["nightly"] = nightly.to_json()
                    if baseline_src is not None:
                        out["nightly_baseline"] = _baseline_nightly(
                            args, gw, sync_data, workload, baseline_src, full_wall=full.wall_s
                        ).to_json()
                else:
                    out["nightly"] = Result(
                        "hoop-sessions sync (nothing new)",
                        "not run",
                        note="needs a successful sync backfill in the same run",
                    ).to_json()
    for key, suffix in (("floor", ""), ("floor-lanes", "_lanes")):
        floor = results.get(key)
        for r in results.values():
            if floor and floor.status == "ok" and r.status == "ok" and floor.wall_s and floor.cpu_s:
                r.extra[f"wall_ratio_to_floor{suffix}"] = (r.wall_s or 0) / floor.wall_s
                r.extra[f"cpu_ratio_to_floor{suffix}"] = (r.cpu_s or 0) / floor.cpu_s
    local, s3 = results.get("sync"), results.get("sync-s3")
    if local and s3 and local.status == s3.status == "ok" and local.wall_s and local.cpu_s:
        # Against the local sync of the same run (same workload, same machine load).
        s3.extra["wall_ratio_to_sync"] = (s3.wall_s or 0) / local.wall_s
        s3.extra["cpu_ratio_to_sync"] = (s3.cpu_s or 0) / local.cpu_s
        s3.extra["rss_ratio_to_sync"] = (s3.peak_rss_mib or 0) / (local.peak_rss_mib or 1)
    out["contenders"] = [results[n].to_json() for n in CONTENDERS if n in results]


def _baseline_nightly(
    args: argparse.Namespace,
    gw: Any,
    data: Path,
    workload: Workload,
    src: Path,
    *,
    full_wall: float | None,
) -> Result:
    """The same nightly run by the baseline's code, on a copy of the same data directory (the
    baseline reads its state from the warehouse and the raw files, which are the same)."""
    _log(f"nightly sync with nothing new, baseline code ({args.baseline_ref})")
    with scratch_dir("nightly-baseline") as where:
        copy = where / "data"
        shutil.copytree(data, copy)
        result = run_sync_nightly(
            gw,
            copy,
            concurrency=args.concurrency,
            timeout_s=args.timeout,
            first_day=workload.start,
            pythonpath=src,
            name=f"hoop-sessions sync (nothing new), baseline {args.baseline_ref}",
        )
    if full_wall and result.wall_s:
        result.extra["share_of_a_full_day"] = result.wall_s / (full_wall / workload.days)
    return result


def run_large_stream(args: argparse.Namespace, out: dict[str, Any]) -> None:
    workload = _workload(
        args,
        days=1,
        sessions_per_day=args.large_day_sessions,
        large_streams=1,
        large_stream_mib=args.large_stream_mib,
    )
    with gateway(workload) as gw, scratch_dir("large") as data:
        _log(
            f"large stream: 1 day, {workload.sessions_per_day} sessions, one of {args.large_stream_mib:g} MiB"
        )
        result = run_sync_backfill(
            gw,
            workload,
            data,
            concurrency=args.concurrency,
            timeout_s=args.timeout,
            name=f"backfill of a day with a {args.large_stream_mib:g} MiB stream",
        )
    result.extra["large_stream_mib"] = args.large_stream_mib
    out["large_stream"] = result.to_json()


@contextmanager
def baseline_checkout(ref: str) -> Iterator[Path]:
    """``src/`` and ``sql/`` of commit ``ref`` in a scratch folder: the code as it was, run with
    ``PYTHONPATH`` pointing there (the build worker inherits it)."""
    with scratch_dir("baseline") as where:
        archive = subprocess.run(
            ["git", "archive", ref, "src", "sql"], cwd=REPO_DIR, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
        yield where / "src"


def run_memory_rows(args: argparse.Namespace, out: dict[str, Any]) -> None:
    """Each memory row's day read by this code and by the baseline's, one after the other."""
    day = datetime.now(UTC).date() - timedelta(days=1)
    sessions, mib = args.ten_streams
    shapes = {
        "ten-streams": (
            f"a day with {sessions} `kubectl logs` streams of {mib:g} MiB",
            sessions,
            mib,
            "logs",
        ),
        "rdp": (f"a day with one {args.rdp_mib:g} MiB RDP recording", 1, args.rdp_mib, "rdp"),
    }
    rows = []
    with contextlib.ExitStack() as stack:
        baseline = (
            None
            if args.baseline_ref == "none"
            else stack.enter_context(baseline_checkout(args.baseline_ref))
        )
        for key in args.memory_rows:
            title, count, size, kind = shapes[key]
            row: dict[str, Any] = {"row": key, "name": title, "baseline_ref": args.baseline_ref}
            with large_day_gateway(day, sessions=count, stream_mib=size, kind=kind) as gw:
                workload = Workload(
                    start=day, days=1, sessions_per_day=count, now=datetime.now(UTC), latency_ms=0.0
                )
                for label, src in (("current", None), ("baseline", baseline)):
                    if label == "baseline" and src is None:
                        continue
                    _log(f"{key}: {title}, {label} code")
                    with scratch_dir(key) as data:
                        result = run_sync_backfill(
                            gw,
                            workload,
                            data,
                            concurrency=args.concurrency,
                            timeout_s=args.timeout,
                            name=f"{title} ({label})",
                            pythonpath=src,
                        )
                    _log(
                        f"{key} ({label}): {result.status}, peak RSS {result.peak_rss_mib or 0:.0f} MiB, "
                        f"{result.sessions} session(s) loaded"
                    )
                    row[label] = result.to_json()
            rows.append(row)
    out["memory_rows"] = rows


def run_compliance(args: argparse.Namespace, out: dict[str, Any]) -> None:
    _log(
        f"compliance pack on {args.compliance_sessions:,} sessions / {args.compliance_events:,} events"
    )
    argv = [
        sys.executable,
        "-m",
        "benchmarks.compliance_pack",
        "--sessions",
        str(args.compliance_sessions),
        "--events",
        str(args.compliance_events),
    ]
    if args.compliance_db:
        argv += ["--db", str(args.compliance_db), "--reuse"]
    proc = subprocess.run(
        argv, capture_output=True, text=True, cwd=REPO_DIR, timeout=args.timeout, check=False
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        out["compliance"] = {"status": "failed", "note": tail}
        return
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    doc["status"] = "ok"
    out["compliance"] = doc


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    started = datetime.now(UTC)
    out: dict[str, Any] = {
        "started_at": started.isoformat(),
        "command": "python -m benchmarks.run "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
    }
    if args.only:
        run_contenders(args, out)
    if args.large_stream:
        run_large_stream(args, out)
    if args.memory_rows:
        run_memory_rows(args, out)
    if args.compliance:
        run_compliance(args, out)
    out["targets"] = targets(out)
    out["finished_at"] = datetime.now(UTC).isoformat()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2, default=str) + "\n")
    report = markdown_report(out)
    args.output.with_suffix(".md").write_text(report)
    print(report)
    _log(f"wrote {args.output} and {args.output.with_suffix('.md').name}")
    failed = [c["name"] for c in out.get("contenders", []) if c["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
