"""A small asyncio HTTP/1.1 server for the simulated gateway.

Hand-written rather than built on http.server or a framework: it must serve thousands of
requests per second on one core, keep connections alive, stream 100 MiB bodies with
back-pressure, and misbehave on purpose (drop a connection, send half a body, answer late),
which no framework lets a handler do.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from .api import App, Response
from .config import SimulatorConfig, as_utc
from .dataset import Dataset
from .faults import REASONS, Fault, FaultInjector
from .render import Body
from .timefmt import from_us, to_us

_MAX_HEAD = 64 * 1024


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is installed (it roughly doubles throughput), else the stdlib loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@dataclass(frozen=True)
class Stats:
    """Requests served per route, responses per status, and faults injected per kind."""

    requests: dict[str, int]
    statuses: dict[int, int]
    faults: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.requests.values())


class _Counters:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.faults: Counter[str] = Counter()

    def snapshot(self) -> Stats:
        return Stats(dict(self.requests), dict(self.statuses), dict(self.faults))

    def reset(self) -> None:
        self.requests.clear()
        self.statuses.clear()
        self.faults.clear()


class Engine:
    """What the connections share: the app, the fault injector, the counters, the delays."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.faults = FaultInjector(app.cfg)
        self.counters = _Counters()
        self.latency_s = app.cfg.latency_ms / 1000
        self.slow_s = app.cfg.slow_response_s
        self.connections: set[_Connection] = set()


def _bad_first_line(buffer: bytearray) -> bool:
    end = buffer.find(b"\n")
    if end < 0:
        return False
    parts = bytes(buffer[:end]).rstrip(b"\r").split(b" ")
    return len(parts) != 3 or not parts[2].startswith(b"HTTP/1.")


class _Connection(asyncio.Protocol):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False
        self.closed = False
        self._drain: asyncio.Future[None] | None = None

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.engine.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.engine.connections.discard(self)
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._serve_buffered()

    # --- requests -------------------------------------------------------------------------

    def _serve_buffered(self) -> None:
        while not self.busy and not self.closed:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEAD:
                    self._write_simple(431, b"request header too large", close=True)
                elif _bad_first_line(self.buffer):
                    # hoop's API runs on Go's net/http (hoop: gateway/api/server.go), which reads
                    # the request line first and answers 400 to a malformed one at once: a TLS
                    # ClientHello sent to this plain port gets that answer, not a wait.
                    self._write_simple(400, b"400 Bad Request", close=True)
                return
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                self._write_simple(400, b"bad request", close=True)
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if len(self.buffer) < end + 4 + length:
                return  # wait for the (ignored) request body
            del self.buffer[: end + 4 + length]
            method, target, version = parts
            connection = headers.get("connection", "").lower()
            close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
            self._serve(method, target, headers, close)

    def _serve(self, method: str, target: str, headers: dict[str, str], close: bool) -> None:
        engine = self.engine
        try:
            response = engine.app.handle(method, target, headers)
        except Exception:  # a simulator bug: answer 500 rather than hang the client, and say so
            traceback.print_exc()
            response = Response(500, "text/plain", b"simulator error (see its stderr)", "other")
        fault = engine.faults.decide(f"{method} {target}")
        engine.counters.requests[response.route] += 1
        if response.permanent_failure:
            engine.counters.faults["permanent"] += 1
        if fault is None and engine.latency_s == 0 and isinstance(response.body, bytes):
            self._write_response(response.status, response.content_type, response.body, close=close)
            return
        self.busy = True
        task = asyncio.get_running_loop().create_task(self._serve_later(response, fault, close))
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.busy = False
        error = None if task.cancelled() else task.exception()
        if error is not None:  # a simulator bug while writing: say so, and hang up
            traceback.print_exception(error)
            if self.transport is not None:
                self.transport.abort()
            return
        if not self.closed:
            self._serve_buffered()

    async def _serve_later(self, response: Response, fault: Fault | None, close: bool) -> None:
        engine = self.engine
        if engine.latency_s:
            await asyncio.sleep(engine.latency_s)
        if fault is not None:
            engine.counters.faults[fault.kind] += 1
            if fault.kind == "drop":
                self._close()
                return
            if fault.kind == "truncate":
                self._truncate(response)
                return
            if fault.kind == "slow":
                await asyncio.sleep(engine.slow_s)
            elif fault.status is not None:
                content_type, body = fault.body()
                extra = f"Retry-After: {fault.retry_after}\r\n" if fault.kind == "429" else ""
                self._write_response(fault.status, content_type, body, close=close, extra=extra)
                return
        if isinstance(response.body, bytes):
            self._write_response(response.status, response.content_type, response.body, close=close)
        else:
            await self._write_streamed(response, response.body, close=close)

    # --- writing --------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def _write_head(
        self, status: int, content_type: str, length: int, *, close: bool, extra: str = ""
    ) -> None:
        connection = "Connection: close\r\n" if close else ""
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n{extra}{connection}\r\n"
        )
        self._write(head.encode("latin-1"))

    def _write_simple(self, status: int, body: bytes, *, close: bool) -> None:
        self._write_response(status, "text/plain", body, close=close)

    def _write_response(
        self, status: int, content_type: str, body: bytes, *, close: bool, extra: str = ""
    ) -> None:
        self.engine.counters.statuses[status] += 1
        self._write_head(status, content_type, len(body), close=close, extra=extra)
        self._write(body)
        if close:
            self._close()

    async def _write_streamed(self, response: Response, body: Body, *, close: bool) -> None:
        self.engine.counters.statuses[response.status] += 1
        self._write_head(response.status, response.content_type, body.length, close=close)
        for chunk in body.parts():
            if self.closed:
                return
            self._write(chunk)
            if self._drain is not None:
                await self._drain
        if close:
            self._close()

    def _truncate(self, response: Response) -> None:
        """Promise the whole body, send half of it (at most 64 KiB), then hang up."""
        body = response.body
        first = body if isinstance(body, bytes) else next(iter(body.parts()))
        length = len(body) if isinstance(body, bytes) else body.length
        self._write_head(response.status, response.content_type, length, close=False)
        self._write(first[: min(len(first) // 2, 65_536)])
        self._close()


class Gateway:
    """A running simulator, as `serve` hands it out."""

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop, port: int) -> None:
        self._engine = engine
        self._loop = loop
        self.port = port
        self.url = f"http://{engine.app.cfg.host}:{port}"
        self.token = engine.app.cfg.token
        self.config = engine.app.cfg
        self.dataset = engine.app.dataset

    @property
    def now(self) -> datetime:
        return from_us(self._engine.app.now_us)

    def set_now(self, when: datetime) -> None:
        """Move the gateway's clock: sessions finish, reviews get decided, streams grow."""
        self._engine.app.now_us = to_us(as_utc(when))

    @property
    def stats(self) -> Stats:
        """A snapshot of the counters, taken on the server thread so that it is consistent."""
        if not self._loop.is_running():  # the server has stopped: nothing changes them now
            return self._engine.counters.snapshot()
        return asyncio.run_coroutine_threadsafe(_snapshot(self._engine), self._loop).result(
            timeout=10
        )

    def reset_stats(self) -> None:
        asyncio.run_coroutine_threadsafe(_reset(self._engine), self._loop).result(timeout=10)


async def _snapshot(engine: Engine) -> Stats:
    return engine.counters.snapshot()


async def _reset(engine: Engine) -> None:
    engine.counters.reset()


async def start(engine: Engine, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(engine), host, port, reuse_address=True, backlog=1024
    )
    bound = server.sockets[0].getsockname()[1]
    engine.app.base_url = f"http://{host}:{bound}"
    return server


@contextlib.contextmanager
def serve(cfg: SimulatorConfig, dataset: Dataset | None = None) -> Iterator[Gateway]:
    """Run the simulator on `cfg.host` (a free port unless `cfg.port`) in a background thread
    with its own event loop, for as long as the `with` block lasts."""
    engine = Engine(App(cfg, dataset))
    ready = threading.Event()
    state: dict[str, object] = {}
    loop = new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(start(engine, cfg.host, cfg.port))
        except OSError as exc:
            state["error"] = exc
            ready.set()
            return
        state["port"] = server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        server.close()
        for connection in list(engine.connections):
            if connection.transport is not None:
                connection.transport.abort()
        loop.run_until_complete(asyncio.sleep(0))
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    thread = threading.Thread(target=run, name="hoop-simulator", daemon=True)
    thread.start()
    ready.wait()
    if "error" in state:
        thread.join()
        raise state["error"]  # type: ignore[misc]
    try:
        yield Gateway(engine, loop, int(state["port"]))  # type: ignore[call-overload]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def run_forever(cfg: SimulatorConfig, *, announce: Callable[[str], None]) -> None:
    """Serve in the foreground until SIGINT or SIGTERM (the subprocess form)."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    engine = Engine(App(cfg))
    server = loop.run_until_complete(start(engine, cfg.host, cfg.port))
    stop: asyncio.Future[None] = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop)
    announce(engine.app.base_url)
    try:
        loop.run_until_complete(stop)
    finally:
        server.close()
        for connection in list(engine.connections):
            if connection.transport is not None:
                connection.transport.abort()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
