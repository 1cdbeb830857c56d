"""``hoop-sessions demo``: the whole pipeline on an empty machine, against the local gateway."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from shlex import quote

from hoop_sessions.compliance.rules import get_rule, refresh_findings, run_rule
from hoop_sessions.config import Secret, Settings
from hoop_sessions.extract.windows import days_between
from hoop_sessions.progress import LogProgress
from hoop_sessions.simulator import Dataset, SimulatorConfig, serve
from hoop_sessions.sync.run import backfill_days, nightly_days, publish_warehouse, sync_days
from hoop_sessions.warehouse import load as warehouse
from hoop_sessions.warehouse import snapshot


def run_demo(*, days: int, sessions_per_day: int, seed: int, echo: Callable[[str], None]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.date()
    first = today - timedelta(days=days)
    last = today - timedelta(days=1)
    base = Settings.from_env()
    token = base.api_token.get() if base.api_token else "demo-token"
    config = SimulatorConfig(
        seed=seed,
        start=first,
        days=days + 1,
        sessions_per_day=sessions_per_day,
        now=now,
        token=token,
    )
    with serve(config) as gateway:
        settings = Settings.from_env(
            api_url=gateway.url, api_token=Secret(gateway.token), sync_start_date=first
        )
        echo(f"local hoop gateway on {gateway.url}; data in {settings.data_dir}/")
        plan = backfill_days(settings, first, last, now=now)
        echo(f"backfill {first} .. {last}: {len(plan.todo)} day(s) to sync, {len(plan.done)} done")
        backfill = sync_days(
            settings, plan.days, progress=LogProgress(len(plan.todo)), now=now, relist=plan.relist
        )
        nightly = nightly_days(settings, now=now)
        echo(f"nightly sync: {', '.join(str(d) for d in nightly.days)}")
        night = sync_days(
            settings,
            nightly.days,
            progress=LogProgress(len(nightly.days)),
            now=now,
            relist=nightly.relist,
        )
        failed = {**backfill.failed, **night.failed}
        if failed:
            raise SystemExit(f"demo failed on {sorted(failed)}: {failed}")
        expected = sum(
            len(Dataset(config).session_ids(d, now=now)) for d in days_between(first, last)
        )
    with snapshot.connect_writer(settings) as con:
        refresh = refresh_findings(con)
    publish_warehouse(settings)
    # The summary reads what an analyst reads: the published file.
    with warehouse.connect(
        settings.warehouse_path, read_only=True, lock_timeout=settings.lock_timeout_seconds
    ) as con:
        counts = warehouse.table_counts(con)
        # The same period on both sides: the warehouse may hold other days (a Dagster backfill).
        in_period = con.execute(
            "SELECT count(*), count(DISTINCT session_id) FROM sessions WHERE start_day BETWEEN ? AND ?",
            [first, last],
        ).fetchone() or (0, 0)
        figure = len(run_rule(con, get_rule("prod_access_without_approval")).rows)
    echo("")
    echo("rows per table:")
    for name, count in counts.items():
        echo(f"  {name:<20} {count:>10,}")
    echo("")
    echo(
        f"sessions served by the gateway for {first} .. {last}: {expected:,}; in the warehouse for "
        f"the same days: {in_period[0]:,} rows, {in_period[1]:,} distinct"
    )
    echo(
        f"compliance: {figure:,} session(s) on connections tagged environment=prod without an "
        "approved review"
    )
    echo(
        "findings per rule: "
        + ", ".join(f"{rule} {n}" for rule, n in sorted(refresh.counts.items()))
    )
    # The project's own DuckDB reads the file; a separately installed duckdb CLI may be of an
    # older storage version. The data directory is named when it is not the default one.
    data_dir = settings.data_dir
    data_env = "" if data_dir == Path("data") else f"HOOP_DATA_DIR={quote(str(data_dir))} "
    sql = "hoop-sessions sql"
    echo(f"query it: {data_env}.venv/bin/{sql}  (or: {data_env}.tools/bin/uv run {sql})")
