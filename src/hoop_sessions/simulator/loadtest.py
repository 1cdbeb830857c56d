"""Measure how many list + get requests per second the simulator serves.

    python -m hoop_sessions.simulator.loadtest --seconds 10 --clients 2

Starts the simulator in its own process (so it does not share this process's GIL), then runs
client processes over raw keep-alive sockets, each alternating one list page (limit 100) with
gets of the sessions on it (`expand=event_stream,session_input`). A raw-socket client is used
because httpx itself tops out below the simulator's rate; the figure is the server's.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import click
import orjson

_LENGTH = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)


class RawClient:
    """A minimal HTTP/1.1 keep-alive client: enough to read Content-Length responses fast."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.auth = f"Authorization: Bearer {token}\r\n".encode()
        self.host = f"Host: {host}:{port}\r\n".encode()
        self.buffer = b""

    def get(self, target: str) -> tuple[int, bytes]:
        self.sock.sendall(
            b"GET " + target.encode() + b" HTTP/1.1\r\n" + self.host + self.auth + b"\r\n"
        )
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        match = _LENGTH.search(head)
        length = int(match.group(1)) if match else 0
        while len(rest) < length:
            rest += self._recv()
        self.buffer = rest[length:]
        return int(head[9:12]), rest[:length]

    def _recv(self) -> bytes:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        return data


def _client(
    port: int, token: str, start: str, days: int, seconds: float, result: multiprocessing.Queue[int]
) -> None:
    client = RawClient("127.0.0.1", port, token)
    first = date.fromisoformat(start)
    requests = 0
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        day = first + timedelta(days=n % days)
        offset = (n // days) * 100 % 200
        n += 1
        status, body = client.get(
            f"/api/sessions?start_date={day}T00:00:00Z&end_date={day + timedelta(days=1)}T00:00:00Z"
            f"&limit=100&offset={offset}&count=none"
        )
        requests += 1
        assert status == 200, body
        for row in orjson.loads(body)["data"]:
            if time.perf_counter() >= deadline:
                break
            status, _ = client.get(f"/api/sessions/{row['id']}?expand=event_stream,session_input")
            assert status == 200
            requests += 1
    result.put(requests)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Measurement:
    requests: int
    seconds: float
    server_cpu_seconds: float | None  # CPU the simulator process used meanwhile

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def measure(
    *, seconds: float, clients: int, days: int = 3, sessions_per_day: int = 200
) -> Measurement:
    """Requests served by a simulator subprocess to `clients` client processes in `seconds`."""
    start = "2026-11-01"
    server = subprocess.Popen(  # noqa: S603  # this interpreter, fixed arguments
        [
            sys.executable,
            "-m",
            "hoop_sessions.simulator",
            "--port",
            "0",
            "--token",
            "bench",
            "--start",
            start,
            "--days",
            str(days),
            "--sessions-per-day",
            str(sessions_per_day),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().rsplit(":", 1)[1])
        # Touch every day once first (the first touch generates it), as a long sync would.
        warm = RawClient("127.0.0.1", port, "bench")
        for i in range(days):
            day = date.fromisoformat(start) + timedelta(days=i)
            warm.get(f"/api/sessions?start_date={day}T00:00:00Z&end_date={day}T23:59:59Z&limit=1")
        results: multiprocessing.Queue[int] = multiprocessing.Queue()
        procs = [
            multiprocessing.Process(
                target=_client, args=(port, "bench", start, days, seconds, results)
            )
            for _ in range(clients)
        ]
        cpu_before = _cpu_seconds(server.pid)
        began = time.perf_counter()
        for p in procs:
            p.start()
        total = sum(results.get() for _ in procs)
        elapsed = time.perf_counter() - began
        cpu_after = _cpu_seconds(server.pid)
        for p in procs:
            p.join()
        cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        return Measurement(total, elapsed, cpu)
    finally:
        server.terminate()
        server.wait(timeout=10)


@click.command()
@click.option("--seconds", type=float, default=10.0, show_default=True)
@click.option("--clients", type=int, default=2, show_default=True, help="Client processes.")
@click.option("--days", type=int, default=3, show_default=True)
@click.option("--sessions-per-day", type=int, default=200, show_default=True)
def main(seconds: float, clients: int, days: int, sessions_per_day: int) -> None:
    m = measure(seconds=seconds, clients=clients, days=days, sessions_per_day=sessions_per_day)
    click.echo(
        f"{m.requests} requests in {m.seconds:.1f} s: {m.rate:,.0f} requests/s "
        f"({clients} client processes, keep-alive, list limit=100 + gets with stream)"
    )
    if m.server_cpu_seconds:
        per_request = m.server_cpu_seconds / m.requests * 1e6
        click.echo(
            f"simulator CPU: {m.server_cpu_seconds / m.seconds:.0%} of one core, "
            f"{per_request:.0f} us a request: about {1e6 / per_request:,.0f} requests/s per core"
        )


if __name__ == "__main__":
    main()
