"""The ``hoop-sessions`` command."""

from __future__ import annotations

import importlib
import logging
import signal
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import click

from hoop_sessions.build.result import warning_line
from hoop_sessions.cli.options import DAY
from hoop_sessions.config import Settings
from hoop_sessions.errors import HoopSessionsError
from hoop_sessions.progress import LogProgress, Progress, RichProgress

if TYPE_CHECKING:
    # For the type checker only: the commands import the sync module when they run.
    from hoop_sessions.progress import DaySummary
    from hoop_sessions.sync.run import RunResult

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("hoop_sessions")


def friendly_errors(fn: F) -> F:
    """Errors of this package end the command with their message and exit code 1, no traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HoopSessionsError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at INFO: too much for a backfill of thousands of sessions.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _progress(days: int) -> Progress:
    if sys.stderr.isatty():
        return RichProgress(days)
    return LogProgress(days)


def _close(progress: Progress) -> None:
    if isinstance(progress, RichProgress):
        progress.close()


class _Kept:
    """A progress that also remembers which days were loaded (for an interrupted run's report)."""

    def __init__(self, inner: Progress) -> None:
        self.inner = inner
        self.days: list[date] = []

    def day_listed(self, day: date, sessions: int, *, listed: bool = True) -> None:
        self.inner.day_listed(day, sessions, listed=listed)

    def session_fetched(self, day: date) -> None:
        self.inner.session_fetched(day)

    def day_done(self, day: date, summary: DaySummary) -> None:
        self.days.append(day)
        self.inner.day_done(day, summary)


def _sync(settings: Settings, days: list[date], **options: Any) -> Any:
    """``sync_days`` with progress; on SIGINT or SIGTERM, stop reading, let the day being loaded
    finish (a load is one transaction: it commits or rolls back), say which days were kept, and
    exit 130 or 143."""
    from hoop_sessions.sync.run import sync_days

    received: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        received.append(signum)
        # Treated as Ctrl-C: asyncio's own SIGINT handler cancels the run, whose clean-up lets
        # the day being loaded finish before KeyboardInterrupt comes out of it.
        on_interrupt = signal.getsignal(signal.SIGINT)
        if callable(on_interrupt):
            on_interrupt(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    progress = _Kept(_progress(len(days)))
    try:
        return sync_days(settings, days, progress=progress, **options)
    except KeyboardInterrupt:
        _close(progress.inner)
        signum = received[0] if received else signal.SIGINT
        kept = sorted(progress.days)
        left = [d for d in days if d not in kept]
        click.echo(
            f"\ninterrupted ({signal.Signals(signum).name}): {len(kept)} of {len(days)} day(s) were "
            "read and loaded and are kept"
            + (f" ({_days_text(kept)})" if kept else "")
            + (f"; not done: {_days_text(left)}" if left else "")
            + ". Nothing half-loaded was left: run the same command again to resume.",
            err=True,
        )
        raise SystemExit(128 + signum) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        _close(progress.inner)


def _days_text(days: list[date]) -> str:
    if len(days) <= 6:
        return ", ".join(str(d) for d in days)
    return f"{days[0]} .. {days[-1]}, {len(days)} days"


class LazyGroup(click.Group):
    """Subcommands that live in other modules are imported only when they are run or listed.

    This keeps the start-up of ``hoop-sessions backfill`` free of the simulator and report code.
    """

    lazy: ClassVar[dict[str, str]] = {
        "simulate": "hoop_sessions.simulator.cli:simulate",
        "rules": "hoop_sessions.cli.analyst:rules_command",
        "query": "hoop_sessions.cli.analyst:query_command",
        "report": "hoop_sessions.cli.analyst:report_command",
        "sql": "hoop_sessions.cli.sql_shell:sql_command",
        "ddl": "hoop_sessions.warehouse.ddl:ddl_command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, attr = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.version_option(package_name="hoop-sessions")
def main(verbose: bool) -> None:
    """Copy hoop session records into a Parquet lake and a DuckDB warehouse for compliance work.

    Configuration comes from the environment: HOOP_API_URL, HOOP_API_TOKEN, HOOP_DATA_DIR, ...
    (see the README).
    """
    _setup_logging(verbose)


def _report(result: RunResult) -> None:
    for day_result in result.days:
        s = day_result.summary()
        listed = (
            f"listed {s['sessions_listed']}"
            if s["listed_again"]
            else f"not listed again (older than HOOP_ROLLING_DAYS): {s['sessions_listed']} sessions as "
            f"listed before, {s['sessions_listed'] - s['sessions_reused']} not final read again by id"
        )
        if not s["changed"]:
            click.echo(
                f"{s['day']}: {listed}, nothing changed since the last sync; {s['requests']} requests"
            )
            continue
        click.echo(
            f"{s['day']}: {listed}, loaded {s['sessions_loaded']}, "
            f"rejected {s['sessions_rejected']} ({s['sessions_reused']} unchanged, not read again), "
            f"{s['requests']} requests, {s['retries']} retries"
        )
    for day_result in result.days:
        build = day_result.build
        if build is not None and build.warnings:
            click.echo(
                f"{day_result.day}: {sum(build.warnings.values())} record warning(s), the sessions "
                f"are loaded (see the record_warnings table): {warning_line(build.warnings)}"
            )
    for day in result.skipped:
        click.echo(
            f"{day}: done (listed completely, every session read and final), skipped; use --redo to read it again"
        )
    for day in result.not_closed:
        click.echo(
            f"{day}: not read yet, it ended less than HOOP_CLOSE_MARGIN_MINUTES ago on the gateway's clock"
        )
    for day, why in sorted(result.left.items()):
        click.echo(f"{day}: left by HOOP_FINAL_HORIZON_DAYS: {why}")
    problems = []
    if result.failed:
        problems.append(
            f"{len(result.failed)} day(s) failed; their previous content is kept:\n"
            + "\n".join(f"  {d}: {why}" for d, why in sorted(result.failed.items()))
        )
    if result.incomplete:
        count = sum(len(items) for items in result.incomplete.values())
        problems.append(
            f"{count} item(s) in {len(result.incomplete)} day(s) are incomplete; the rest of "
            "each day is loaded:\n"
            + "\n".join(
                f"  {d}: {item}" for d, items in sorted(result.incomplete.items()) for item in items
            )
        )
    if problems:
        raise click.ClickException(
            "\n".join(problems) + "\nRun the same command again to retry them "
            "(`hoop-sessions status` lists what is left)."
        )


def _refresh_findings(settings: Settings) -> None:
    """Findings into the writer's copy, then the warehouse published again with them."""
    from hoop_sessions.compliance.rules import refresh_findings
    from hoop_sessions.sync.run import publish_warehouse
    from hoop_sessions.warehouse import snapshot

    with snapshot.connect_writer(settings) as con:
        refresh_findings(con)
    publish_warehouse(settings)


@main.command()
@click.option("--start", required=True, type=DAY, help="First UTC day, YYYY-MM-DD.")
@click.option("--end", required=True, type=DAY, help="Last UTC day (inclusive).")
@click.option(
    "--redo",
    is_flag=True,
    help="Read every day and every session again, even those loaded and final.",
)
@friendly_errors
def backfill(start: date, end: date, redo: bool) -> None:
    """Sync every UTC day from --start to --end (inclusive); resumable."""
    from hoop_sessions.sync.run import backfill_days

    if end < start:
        raise click.BadParameter("--end is before --start")
    today = datetime.now(UTC).date()
    if end >= today:
        raise click.BadParameter(
            f"--end {end} is not over yet: only closed UTC days can be synced completely; the "
            f"latest is yesterday, {today - timedelta(days=1)}"
        )
    settings = Settings.from_env()
    settings.require_api()
    plan = backfill_days(settings, start, end, resume=not redo)
    # Findings are refreshed in the run, when a day's rows changed, before its one publish.
    result = _sync(settings, plan.days, reuse=not redo, relist=plan.relist, findings=True)
    result.skipped = plan.done
    _report(result)


@main.command()
@friendly_errors
def sync() -> None:
    """The nightly job: every day not yet read completely, recent days, and open sessions."""
    from hoop_sessions.sync.run import nightly_days

    settings = Settings.from_env()
    settings.require_api()
    plan = nightly_days(settings)
    click.echo(
        f"syncing {len(plan.todo)} day(s)" + "".join(f"\n  {t.day}: {t.reason}" for t in plan.todo),
        err=True,
    )
    result = _sync(settings, plan.days, relist=plan.relist, findings=True)
    result.left = plan.left
    _report(result)


@main.command()
@click.option("--start", type=DAY, help="First UTC day (default: the first partition day).")
@click.option("--end", type=DAY, help="Last UTC day (default: the last closed day).")
@friendly_errors
def status(start: date | None, end: date | None) -> None:
    """What the sync ledger still has open: days to read, sessions not read or not final."""

    from hoop_sessions.sync import mirror
    from hoop_sessions.sync.ledger import Ledger
    from hoop_sessions.sync.plan import first_day, last_closed_day, plan_days
    from hoop_sessions.sync.run import incomplete_days

    settings = Settings.from_env()
    mirror.hydrate(settings, warehouse=False)  # with an object store: its ledger
    now = datetime.now(UTC)
    first = start or first_day(settings, now.date())
    last = end or last_closed_day(now, timedelta(minutes=settings.close_margin_minutes))
    plan = plan_days(settings, first=first, last=last, now=now)
    incomplete = incomplete_days(Ledger(settings.data_dir), plan.days)
    click.echo(f"{first} .. {last}: {len(plan.done)} day(s) done, {len(plan.todo)} to read")
    for task in plan.todo:
        click.echo(
            f"  {task.day}: {task.reason} ({'listed again' if task.relist else 'read by id'})"
        )
        for item in incomplete.get(task.day, []):
            click.echo(f"    {item}")
    for day, why in sorted(plan.left.items()):
        click.echo(f"  {day}: left by HOOP_FINAL_HORIZON_DAYS: {why}")
    if incomplete:
        raise SystemExit(1)


@main.command()
@click.option("--start", required=True, type=DAY, help="First UTC day.")
@click.option("--end", required=True, type=DAY, help="Last UTC day (inclusive).")
@friendly_errors
def rebuild(start: date, end: date) -> None:
    """Re-flatten and reload days from the raw files, without calling hoop."""
    from hoop_sessions.extract.raw import raw_days
    from hoop_sessions.sync import mirror
    from hoop_sessions.sync.run import publish_warehouse, rebuild_day

    settings = Settings.from_env()
    available = (
        mirror.committed_days(settings, "raw") if settings.data_url else raw_days(settings.raw_dir)
    )
    days = [d for d in available if start <= d <= end]
    if not days:
        raise click.ClickException(
            f"no raw files between {start} and {end} in {settings.data_location}"
        )
    try:
        for day in days:
            # Published once at the end, with the findings: each publish copies the warehouse.
            built = rebuild_day(settings, day, publish=False).build
            assert built is not None  # a rebuild always builds
            click.echo(f"{day}: loaded {built.sessions_loaded}, rejected {built.sessions_rejected}")
    except BaseException:
        publish_warehouse(settings)  # the days rebuilt before the failure
        raise
    _refresh_findings(settings)


@main.command()
@click.option("--start", required=True, type=DAY, help="First UTC day.")
@click.option("--end", required=True, type=DAY, help="Last UTC day (inclusive).")
@friendly_errors
def verify(start: date, end: date) -> None:
    """Recompute the SHA-256 of every raw and lake file and the manifest chain; report changes."""
    from hoop_sessions.extract.windows import days_between
    from hoop_sessions.sync import mirror
    from hoop_sessions.warehouse.manifest import verify as verify_days

    settings = Settings.from_env()
    mirror.hydrate(
        settings, warehouse=False
    )  # with an object store: its manifests, and the files they name
    mirror.pull_days(settings, days_between(start, end), lake=True)
    checked, findings = verify_days(settings.data_dir, start, end)
    for finding in findings:
        click.echo(f"{finding.day}: {finding.problem}")
    if not checked:
        raise click.ClickException(
            f"no manifests between {start} and {end} in {settings.data_location}"
        )
    if findings:
        raise click.ClickException(f"{len(findings)} change(s) found in {len(checked)} day(s)")
    click.echo(
        f"{len(checked)} day(s) verified: every file matches its manifest, the chain is intact"
    )


@main.command()
@click.option("--days", default=7, show_default=True, help="Days of history to simulate and sync.")
@click.option("--sessions-per-day", default=150, show_default=True)
@click.option("--seed", default=7, show_default=True)
@friendly_errors
def demo(days: int, sessions_per_day: int, seed: int) -> None:
    """Start a local hoop gateway, backfill the last days, run the nightly sync, show a summary."""
    from hoop_sessions.cli.demo import run_demo

    run_demo(days=days, sessions_per_day=sessions_per_day, seed=seed, echo=click.echo)
