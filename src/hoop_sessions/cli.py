"""The ``hoop-sessions`` command."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import wraps
from typing import Any, ClassVar, TypeVar

import click

from hoop_sessions.config import Settings
from hoop_sessions.errors import HoopSessionsError
from hoop_sessions.progress import LogProgress, Progress, RichProgress

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


def _parse_day(_ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None


class LazyGroup(click.Group):
    """Subcommands that live in other modules are imported only when they are run or listed.

    This keeps the start-up of ``hoop-sessions backfill`` free of the simulator and report code.
    """

    lazy: ClassVar[dict[str, str]] = {
        "simulate": "hoop_sessions.simulator.cli:simulate",
        "rules": "hoop_sessions.analyst_cli:rules_command",
        "query": "hoop_sessions.analyst_cli:query_command",
        "report": "hoop_sessions.analyst_cli:report_command",
        "sql": "hoop_sessions.sql_shell:sql_command",
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


def _report(result: Any) -> None:
    for day in result.days:
        s = day.summary()
        listed = (
            f"listed {s['sessions_listed']}" if s["listed_again"] else
            f"not listed again (older than HOOP_ROLLING_DAYS): {s['sessions_listed']} sessions as "
            f"listed before, {s['sessions_listed'] - s['sessions_reused']} not final read again by id"
        )
        if not s["changed"]:
            click.echo(f"{s['day']}: {listed}, nothing changed since the last sync; {s['requests']} requests")
            continue
        click.echo(
            f"{s['day']}: {listed}, loaded {s['sessions_loaded']}, "
            f"rejected {s['sessions_rejected']} ({s['sessions_reused']} unchanged, not read again), "
            f"{s['requests']} requests, {s['retries']} retries"
        )
    for day in result.skipped:
        click.echo(f"{day}: already loaded and final, skipped (use --redo to sync it again)")
    if result.failed:
        lines = "\n".join(f"  {d}: {why}" for d, why in sorted(result.failed.items()))
        raise click.ClickException(
            f"{len(result.failed)} day(s) failed; their previous content is kept. Run the same "
            f"command again to retry them:\n{lines}"
        )


def _refresh_findings(settings: Settings) -> None:
    from hoop_sessions import warehouse
    from hoop_sessions.compliance import refresh_findings

    with warehouse.connect(settings.warehouse_path, lock_timeout=settings.lock_timeout_seconds) as con:
        refresh_findings(con)


@main.command()
@click.option("--start", required=True, callback=_parse_day, help="First UTC day, YYYY-MM-DD.")
@click.option("--end", required=True, callback=_parse_day, help="Last UTC day (inclusive).")
@click.option(
    "--redo",
    is_flag=True,
    help="Read every day and every session again, even those loaded and final.",
)
@friendly_errors
def backfill(start: date, end: date, redo: bool) -> None:
    """Sync every UTC day from --start to --end (inclusive); resumable."""
    from hoop_sessions.sync import backfill_days, sync_days

    if end < start:
        raise click.BadParameter("--end is before --start")
    settings = Settings.from_env()
    settings.require_api()
    days, skipped = backfill_days(settings, start, end, resume=not redo)
    progress = _progress(len(days))
    try:
        result = sync_days(settings, days, progress=progress, reuse=not redo)
    finally:
        _close(progress)
    result.skipped = skipped
    if any(day.build is not None for day in result.days):
        _refresh_findings(settings)  # findings change only when a day's rows did
    _report(result)


@main.command()
@friendly_errors
def sync() -> None:
    """The nightly job: yesterday, recent days, and days still holding sessions that may change."""
    from hoop_sessions.sync import nightly_days, sync_days

    settings = Settings.from_env()
    settings.require_api()
    days = nightly_days(settings, today=datetime.now(UTC).date())
    click.echo(f"syncing {len(days)} day(s): {', '.join(str(d) for d in days)}", err=True)
    progress = _progress(len(days))
    try:
        result = sync_days(settings, days, progress=progress)
    finally:
        _close(progress)
    if any(day.build is not None for day in result.days):
        _refresh_findings(settings)  # findings change only when a day's rows did
    _report(result)


@main.command()
@click.option("--start", required=True, callback=_parse_day, help="First UTC day.")
@click.option("--end", required=True, callback=_parse_day, help="Last UTC day (inclusive).")
@friendly_errors
def rebuild(start: date, end: date) -> None:
    """Re-flatten and reload days from the raw files, without calling hoop."""
    from hoop_sessions.raw import raw_days
    from hoop_sessions.sync import rebuild_day

    settings = Settings.from_env()
    days = [d for d in raw_days(settings.raw_dir) if start <= d <= end]
    if not days:
        raise click.ClickException(f"no raw files between {start} and {end} in {settings.raw_dir}")
    for day in days:
        built = rebuild_day(settings, day).build
        assert built is not None  # a rebuild always builds
        click.echo(f"{day}: loaded {built.sessions_loaded}, rejected {built.sessions_rejected}")
    _refresh_findings(settings)


@main.command()
@click.option("--start", required=True, callback=_parse_day, help="First UTC day.")
@click.option("--end", required=True, callback=_parse_day, help="Last UTC day (inclusive).")
@friendly_errors
def verify(start: date, end: date) -> None:
    """Recompute the SHA-256 of every raw and lake file and the manifest chain; report changes."""
    from hoop_sessions.manifest import verify as verify_days

    settings = Settings.from_env()
    checked, findings = verify_days(settings.data_dir, start, end)
    for finding in findings:
        click.echo(f"{finding.day}: {finding.problem}")
    if not checked:
        raise click.ClickException(f"no manifests between {start} and {end} in {settings.data_dir}")
    if findings:
        raise click.ClickException(f"{len(findings)} change(s) found in {len(checked)} day(s)")
    click.echo(f"{len(checked)} day(s) verified: every file matches its manifest, the chain is intact")


@main.command()
@click.option("--days", default=7, show_default=True, help="Days of history to simulate and sync.")
@click.option("--sessions-per-day", default=150, show_default=True)
@click.option("--seed", default=7, show_default=True)
@friendly_errors
def demo(days: int, sessions_per_day: int, seed: int) -> None:
    """Start a local hoop gateway, backfill the last days, run the nightly sync, show a summary."""
    from hoop_sessions.demo import run_demo

    run_demo(days=days, sessions_per_day=sessions_per_day, seed=seed, echo=click.echo)
