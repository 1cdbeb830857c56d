"""`hoop-sessions simulate`: run the local gateway, or export its ground truth."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta

import click

from . import catalog
from .config import (
    ADMIN_IDENTITY,
    FAULT_KINDS,
    MAX_EVENTS_PER_SESSION,
    MIB,
    PROFILES,
    SimulatorConfig,
)
from .server import run_forever
from .truth import export_truth


def _day_sizes(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[date, int]:
    sizes = {}
    for value in values:
        day, sep, count = value.partition("=")
        try:
            if not sep:
                raise ValueError(value)
            sizes[date.fromisoformat(day)] = int(count)
        except ValueError:
            raise click.BadParameter(f"expected YYYY-MM-DD=N, got {value!r}") from None
    return sizes


def _fault_kinds(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown or not kinds:
        raise click.BadParameter(f"choose among {', '.join(FAULT_KINDS)}")
    return kinds


@click.command("simulate")
@click.option("--port", type=int, default=8009, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--token",
    envvar="HOOP_API_TOKEN",
    help="Bearer token to accept [default: $HOOP_API_TOKEN, else a generated demo token].",
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--start",
    type=click.DateTime(["%Y-%m-%d"]),
    help="First simulated UTC day [default: DAYS days before today].",
)
@click.option("--days", type=click.IntRange(min=0), default=7, show_default=True)
@click.option("--sessions-per-day", type=click.IntRange(min=0), default=200, show_default=True)
@click.option(
    "--now",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"]),
    help="The gateway's clock, UTC [default: one day after the last simulated day ends].",
)
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--fault-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option(
    "--fault-kinds",
    default=",".join(FAULT_KINDS),
    show_default=True,
    callback=_fault_kinds,
    help="Comma-separated kinds the faults are drawn from.",
)
@click.option(
    "--slow-s",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="How late a 'slow' fault answers.",
)
@click.option(
    "--fail-day",
    "fail_days",
    multiple=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="A day whose list and get requests always fail (repeatable).",
)
@click.option(
    "--fail-session",
    "fail_sessions",
    multiple=True,
    help="A session id whose get always fails (repeatable).",
)
@click.option("--legacy-gateway", is_flag=True, help="Behave like a gateway older than 1.144.")
@click.option("--multi-tenant", is_flag=True, help="Refuse the legacy Api-Key header.")
@click.option(
    "--newer-gateway",
    is_flag=True,
    help="Add the shapes of gateways newer than 1.148 (EXPIRED reviews, sidecar and "
    "control-plane sessions, recording_format, late rows).",
)
@click.option("--profile", type=click.Choice(PROFILES), default="realistic", show_default=True)
@click.option(
    "--day-size",
    "day_sizes",
    multiple=True,
    callback=_day_sizes,
    help="YYYY-MM-DD=N: this many sessions on that day (repeatable).",
)
@click.option(
    "--burst-size",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Sessions a day that start within the same second.",
)
@click.option(
    "--no-boundary-sessions", is_flag=True, help="No sessions at 00:00:00 and in 23:59:59."
)
@click.option(
    "--large-streams",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Days (from the first) that get one session with a large stream.",
)
@click.option(
    "--large-stream-mib",
    type=click.FloatRange(0, 100, min_open=True),
    default=8.0,
    show_default=True,
)
@click.option(
    "--events-per-session",
    type=click.IntRange(1, MAX_EVENTS_PER_SESSION),
    help="Mean number of events of a recorded stream (each session's varies around it) "
    "[default: the original shapes, about 5 events].",
)
@click.option(
    "--as-user",
    type=click.Choice(sorted(catalog.USERS_BY_EMAIL)),
    help="Make the token this person (not an admin) instead of an admin service account.",
)
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False),
    help="Write the ground truth (JSONL) here and exit.",
)
def simulate(
    *,
    port: int,
    host: str,
    token: str | None,
    seed: int,
    start: datetime | None,
    days: int,
    sessions_per_day: int,
    now: datetime | None,
    latency_ms: float,
    fault_rate: float,
    fault_kinds: tuple[str, ...],
    slow_s: float,
    fail_days: tuple[datetime, ...],
    fail_sessions: tuple[str, ...],
    legacy_gateway: bool,
    multi_tenant: bool,
    newer_gateway: bool,
    profile: str,
    day_sizes: dict[date, int],
    burst_size: int,
    no_boundary_sessions: bool,
    large_streams: int,
    large_stream_mib: float,
    events_per_session: int | None,
    as_user: str | None,
    export_path: str | None,
) -> None:
    """Run a simulated hoop gateway on loopback, with reproducible session data."""
    if not token:
        token = "hpk_demo_" + secrets.token_hex(12)
        click.echo(f"demo token: {token}", err=True)
    cfg = SimulatorConfig(
        seed=seed,
        start=start.date() if start else datetime.now(UTC).date() - timedelta(days=days),
        days=days,
        sessions_per_day=sessions_per_day,
        now=now.replace(tzinfo=UTC) if now else None,
        token=token,
        latency_ms=latency_ms,
        fault_rate=fault_rate,
        fault_kinds=fault_kinds,
        slow_response_s=slow_s,
        failing_days=frozenset(d.date() for d in fail_days),
        failing_sessions=frozenset(fail_sessions),
        legacy_gateway=legacy_gateway,
        multi_tenant=multi_tenant,
        newer_gateway=newer_gateway,
        profile=profile,
        day_sizes=day_sizes,
        burst_size=burst_size,
        boundary_sessions=not no_boundary_sessions,
        large_streams=large_streams,
        large_stream_bytes=int(large_stream_mib * MIB),
        events_per_session=events_per_session,
        identity=catalog.USERS_BY_EMAIL[as_user].identity() if as_user else ADMIN_IDENTITY,
        host=host,
        port=port,
    )
    if export_path:
        count = export_truth(cfg, export_path)
        click.echo(f"wrote {count} sessions to {export_path}")
        return
    run_forever(cfg, announce=lambda url: click.echo(f"listening on {url}"))
