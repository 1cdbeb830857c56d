"""``make dev``: the Dagster UI and daemon on this project (``dagster dev -w workspace.yaml``).

Without ``HOOP_API_URL`` it first starts the local hoop simulator in this process, with a clock
that follows the wall clock, and hands its URL and token to Dagster through the environment only.
``DAGSTER_HOME`` defaults to ``<HOOP_DATA_DIR>/dagster_home``; a new home gets a ``dagster.yaml``
that limits every concurrency pool to one step (one writer of ``warehouse.duckdb``) and captures
this package's log lines in the run logs.

    python -m hoop_sessions.cli.devserver [dagster dev options, e.g. -p 3001]

This module starts Dagster as a program; it does not import it (the library never does).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from hoop_sessions.config import Settings
from hoop_sessions.sync.plan import first_day

DAGSTER_YAML = """\
# Written by `make dev` (hoop_sessions.cli.devserver) for a new DAGSTER_HOME. Edit freely.
concurrency:
  pools:
    # hoop_warehouse: one step that uses warehouse.duckdb at a time, across runs. Steps wait
    # for their pool's slot inside their run; reading hoop and building the lake go on meanwhile.
    default_limit: 1
    granularity: op
telemetry:
  enabled: false
python_logs:
  # The library's warnings (lock waits, retries, unknown fields) in the run logs.
  managed_python_loggers:
    - hoop_sessions
  python_log_level: INFO
"""
SIMULATED_SESSIONS_PER_DAY = 150
CLOCK_TICK_SECONDS = 30.0


def prepare_dagster_home(home: Path) -> Path:
    """Create ``home`` with this project's ``dagster.yaml`` unless it already has one."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    elif "pools" not in config.read_text():
        print(
            f"note: {config} sets no concurrency pool limit; run "
            "`dagster instance concurrency set hoop_warehouse 1` so that loads never overlap",
            file=sys.stderr,
        )
    return home


def dagster_command(argv: Sequence[str], *, cwd: Path) -> list[str]:
    workspace = cwd / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.exists() else ["-m", "pipelines.definitions"]
    return [sys.executable, "-m", "dagster", "dev", *target, *argv]


@contextlib.contextmanager
def local_gateway(settings: Settings) -> Iterator[tuple[str, str]]:
    """The simulator for the partitions' days up to now, its clock kept at the wall clock."""
    from hoop_sessions.simulator import SimulatorConfig, serve

    now = datetime.now(UTC)
    first = first_day(settings, now.date())
    config = SimulatorConfig(
        start=first,
        days=max((now.date() - first).days + 1, 0),
        sessions_per_day=SIMULATED_SESSIONS_PER_DAY,
        now=now,
        token=settings.api_token.get()
        if settings.api_token
        else "hpk_dev_" + secrets.token_hex(12),
    )
    stop = threading.Event()
    with serve(config) as gateway:

        def follow_wall_clock() -> None:
            while not stop.wait(CLOCK_TICK_SECONDS):
                gateway.set_now(datetime.now(UTC))

        ticker = threading.Thread(target=follow_wall_clock, name="simulator-clock", daemon=True)
        ticker.start()
        try:
            yield gateway.url, gateway.token
        finally:
            stop.set()


def run_dagster(command: Sequence[str], env: dict[str, str]) -> int:
    """Run ``dagster dev`` until it exits. SIGTERM is passed on; Ctrl-C reaches it from the tty."""
    child = subprocess.Popen(list(command), env=env)  # noqa: S603 - this interpreter, fixed arguments

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue  # dagster dev got the same Ctrl-C and is shutting down
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # A shell starts background jobs with SIGINT ignored, and an ignored signal stays ignored
    # across exec: dagster dev, which maps SIGTERM onto its SIGINT handler, would then never stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    settings = Settings.from_env()
    data_dir = settings.ensure_data_dir().resolve()
    env = dict(os.environ)
    env["HOOP_DATA_DIR"] = str(
        data_dir
    )  # runs and the daemon use the same data, whatever their cwd
    home = prepare_dagster_home(
        Path(env.get("DAGSTER_HOME") or data_dir / "dagster_home").resolve()
    )
    env["DAGSTER_HOME"] = str(home)
    command = dagster_command(args, cwd=Path.cwd())
    if env.get("HOOP_API_URL"):
        _say_how_to_reach(env, token_shown=False)
        return run_dagster(command, env)
    with local_gateway(settings) as (url, token):
        env["HOOP_API_URL"] = url
        env["HOOP_API_TOKEN"] = token
        print(f"HOOP_API_URL is not set: a local hoop simulator listens on {url}", file=sys.stderr)
        _say_how_to_reach(env, token_shown=settings.api_token is None)
        return run_dagster(command, env)


def _say_how_to_reach(env: dict[str, str], *, token_shown: bool) -> None:
    """What another shell exports to run the README's ``dagster ...`` commands on the same
    instance and data (a real gateway's token is never printed, only the simulator's demo one)."""
    token = shlex.quote(env["HOOP_API_TOKEN"]) if token_shown else '"$HOOP_API_TOKEN"'
    print(
        "to use `dagster ...` commands on this instance from another shell:\n"
        f"  export DAGSTER_HOME={shlex.quote(env['DAGSTER_HOME'])} "
        f"HOOP_DATA_DIR={shlex.quote(env['HOOP_DATA_DIR'])} "
        f"HOOP_API_URL={shlex.quote(env['HOOP_API_URL'])} HOOP_API_TOKEN={token}",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
