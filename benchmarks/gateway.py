"""The simulated hoop gateway in its own process, so it never shares the measured client's GIL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache

_LISTENING = re.compile(r"listening on (http://\S+)")


@dataclass(frozen=True)
class Workload:
    """What the simulated gateway serves: the data of ``days`` UTC days from ``start``."""

    start: date
    days: int
    sessions_per_day: int
    now: datetime
    latency_ms: float
    seed: int = 7
    events_per_session: int | None = None  # passed only if the simulator has the knob
    large_streams: int = 0
    large_stream_mib: float = 8.0

    @property
    def end(self) -> date:
        """The last day (inclusive)."""
        return self.start + timedelta(days=self.days - 1)


@dataclass(frozen=True)
class RunningGateway:
    url: str
    token: str
    pid: int


@cache
def simulator_options() -> frozenset[str]:
    """The long options the simulator's command line accepts (it is still growing)."""
    out = subprocess.run(
        [sys.executable, "-m", "hoop_sessions.simulator", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    ).stdout
    return frozenset(re.findall(r"(--[a-z][a-z0-9-]+)", out))


def _argv(workload: Workload) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "hoop_sessions.simulator",
        "--port",
        "0",
        "--seed",
        str(workload.seed),
        "--start",
        workload.start.isoformat(),
        "--days",
        str(workload.days),
        "--sessions-per-day",
        str(workload.sessions_per_day),
        "--now",
        workload.now.strftime("%Y-%m-%dT%H:%M:%S"),
        "--latency-ms",
        str(workload.latency_ms),
    ]
    options = simulator_options()
    if workload.events_per_session is not None and "--events-per-session" in options:
        argv += ["--events-per-session", str(workload.events_per_session)]
    if workload.large_streams:
        argv += [
            "--large-streams",
            str(workload.large_streams),
            "--large-stream-mib",
            str(workload.large_stream_mib),
        ]
    return argv


@contextmanager
def gateway(
    workload: Workload, *, token: str = "bench-token", timeout_s: float = 120.0
) -> Iterator[RunningGateway]:
    """Start ``python -m hoop_sessions.simulator --port 0`` and wait until it listens."""
    with _serve(_argv(workload), token=token, timeout_s=timeout_s) as running:
        yield running


@contextmanager
def large_day_gateway(
    day: date, *, sessions: int, stream_mib: float, kind: str, token: str = "bench-token"
) -> Iterator[RunningGateway]:
    """A gateway serving one day of ``sessions`` sessions with ``stream_mib`` MiB streams each
    (``benchmarks.large_day``: ``kubectl logs`` output or RDP recordings)."""
    argv = [
        sys.executable,
        "-m",
        "benchmarks.large_day",
        "--port",
        "0",
        "--day",
        day.isoformat(),
        "--sessions",
        str(sessions),
        "--stream-mib",
        str(stream_mib),
        "--kind",
        kind,
    ]
    with _serve(argv, token=token, timeout_s=60.0) as running:
        yield running


@contextmanager
def _serve(argv: list[str], *, token: str, timeout_s: float) -> Iterator[RunningGateway]:
    env = {**os.environ, "HOOP_API_TOKEN": token}
    # Output goes to a file, not a pipe: a pipe nobody reads after start-up could fill and stall
    # the server in the middle of a measurement.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    url = None
    text = ""
    deadline = time.monotonic() + timeout_s
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
        if match := _LISTENING.search(text):
            url = match.group(1)
    if url is None:
        proc.kill()
        proc.wait()
        log.close()
        raise RuntimeError("the gateway did not start:\n" + "\n".join(text.splitlines()[-20:]))
    try:
        yield RunningGateway(url=url, token=token, pid=proc.pid)
    finally:
        # Only the process this function started.
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
