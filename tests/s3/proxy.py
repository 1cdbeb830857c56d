"""A fault-injecting HTTP proxy on loopback, in front of the S3 server of the tests.

It speaks just enough HTTP/1.1 to sit between an S3 client and the server without changing a
byte: each request is relayed as it was read (head and body, whether the body is framed by
``Content-Length`` or sent chunked, trailers included), and each answer likewise. Between the two
it can break chosen requests the way a store and the network in front of it do:

- ``slowdown``: a 503 with S3's ``SlowDown`` error document (throttling),
- ``internal``: a 500 with S3's ``InternalError`` document,
- ``drop``: the connection is closed after the whole request was read, without an answer,
- ``drop-half``: the connection is closed after half of the request body was read.

Rules pick requests by method (``PUT`` for objects and parts, ``POST`` for the start and the
completion of a multipart upload) and by position: the Nth matching request, or every Kth. The
proxy counts what it relayed and what it broke, so a test can assert that its faults happened.

A request that says ``Expect: 100-continue`` is answered ``100 Continue`` by the proxy itself, so
that it holds the whole request before it decides; the server's own interim answer is then not
relayed (the client has had one).
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import socketserver
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

Fault = Literal["slowdown", "internal", "drop", "drop-half"]
FAULTS: tuple[Fault, ...] = ("slowdown", "internal", "drop", "drop-half")

# The error documents S3 sends for these faults (code, message), with the status they come with.
ERRORS: dict[str, tuple[int, str, str, str]] = {
    "slowdown": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    "internal": (
        500,
        "Internal Server Error",
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
}
MAX_LINE = 64 * 1024
PIECE = 256 * 1024
IDLE_SECONDS = 60.0  # a connection the client left open and idle is closed after this


class Closed(Exception):
    """The other side closed its connection, or sent something that is not HTTP."""


@dataclass
class Rule:
    """Break the requests of ``method`` (and whose target contains ``target``) at these positions."""

    method: str
    fault: Fault
    nth: frozenset[int] = frozenset()  # 1-based positions among the matching requests
    every: int | None = None  # every Kth matching request (K, 2K, ...)
    limit: int | None = None  # break at most this many
    target: str = ""
    seen: int = 0
    broken: int = 0

    def decide(self, method: str, target: str) -> bool:
        if method != self.method or self.target not in target:
            return False
        self.seen += 1
        if self.limit is not None and self.broken >= self.limit:
            return False
        hit = self.seen in self.nth or (self.every is not None and self.seen % self.every == 0)
        if hit:
            self.broken += 1
        return hit


@dataclass
class Message:
    """The head of a request or an answer: its raw bytes and its parsed parts."""

    raw: bytes
    start: list[str]
    headers: dict[str, str]

    def header(self, name: str) -> str:
        return self.headers.get(name, "")

    @property
    def chunked(self) -> bool:
        return "chunked" in self.header("transfer-encoding").lower()

    @property
    def length(self) -> int | None:
        value = self.header("content-length")
        return int(value) if value.strip().isdigit() else None

    @property
    def closes(self) -> bool:
        return "close" in self.header("connection").lower()


def read_head(stream: BinaryIO) -> Message | None:
    """One message head (start line and headers), or None when the connection ended before one."""
    lines: list[bytes] = []
    while True:
        line = stream.readline(MAX_LINE)
        if not line:
            if lines:
                raise Closed("connection closed inside a message head")
            return None
        if not lines and line in (b"\r\n", b"\n"):
            continue  # tolerated between messages
        if not line.endswith(b"\n"):
            raise Closed("a header line too long")
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            break
    headers: dict[str, str] = {}
    for line in lines[1:-1]:
        name, _, value = line.decode("latin-1").partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    start = lines[0].decode("latin-1").rstrip("\r\n").split(" ", 2)
    return Message(b"".join(lines), start, headers)


def _exactly(stream: BinaryIO, size: int) -> Iterator[bytes]:
    while size > 0:
        piece = stream.read(min(size, PIECE))
        if not piece:
            raise Closed("connection closed inside a body")
        size -= len(piece)
        yield piece


def _chunked(stream: BinaryIO) -> Iterator[bytes]:
    """The raw bytes of a chunked body: size lines, data, the last chunk and its trailers."""
    while True:
        line = stream.readline(MAX_LINE)
        if not line.endswith(b"\n"):
            raise Closed("connection closed inside a chunk size")
        yield line
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers, up to the empty line
                trailer = stream.readline(MAX_LINE)
                if not trailer.endswith(b"\n"):
                    raise Closed("connection closed inside the trailers")
                yield trailer
                if trailer in (b"\r\n", b"\n"):
                    return
        yield from _exactly(stream, size + 2)  # the data and its CRLF


def body(stream: BinaryIO, head: Message, *, request: bool, method: str = "") -> Iterator[bytes]:
    """The raw body that follows ``head`` on ``stream``, piece by piece."""
    if not request:
        status = int(head.start[1])
        if method == "HEAD" or status < 200 or status in (204, 304):
            return
    if head.chunked:
        yield from _chunked(stream)
    elif head.length is not None:
        yield from _exactly(stream, head.length)
    elif not request:
        # An answer without framing runs until the server closes the connection.
        while piece := stream.read(PIECE):
            yield piece


@dataclass
class Counts:
    """What the proxy did, by method: relayed to the server, or broken (by fault)."""

    forwarded: Counter[str] = field(default_factory=Counter)
    broken: Counter[tuple[str, str]] = field(default_factory=Counter)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (method, target, outcome)

    def broken_total(self, method: str | None = None) -> int:
        return sum(n for (m, _), n in self.broken.items() if method in (None, m))


class FaultProxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of ``upstream`` (host, port).

    Use it as a context manager; ``url`` is what a client takes as its endpoint.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.counts = Counts()
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sockets: set[socket.socket] = set()
        # Called with (method, target) as each request arrives, before anything is relayed; when
        # it returns True the connection is closed instead (a test kills a client there).
        self.on_request: Callable[[str, str], bool] | None = None
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.connection, self.rfile)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- set-up ---------------------------------------------------------------------------------

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for sock in list(self._sockets):
                _close(sock)
        self._thread.join()

    def inject(
        self,
        method: str,
        fault: Fault,
        *,
        nth: Iterable[int] = (),
        every: int | None = None,
        limit: int | None = None,
        target: str = "",
    ) -> Rule:
        """Break the ``nth`` (1-based) or every ``every``-th request of ``method`` from now on."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        rule = Rule(method.upper(), fault, frozenset(nth), every, limit, target)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Relay everything from now on."""
        with self._lock:
            self._rules.clear()

    # -- serving --------------------------------------------------------------------------------

    def _decide(self, method: str, target: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.decide(method, target):
                    return rule.fault
        return None

    def _record(self, method: str, target: str, outcome: str) -> None:
        with self._lock:
            if outcome == "forwarded":
                self.counts.forwarded[method] += 1
            else:
                self.counts.broken[(method, outcome)] += 1
            self.counts.log.append((method, target, outcome))

    def _track(self, sock: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._sockets.add if add else self._sockets.discard)(sock)

    def _serve(self, client: socket.socket, reader: BinaryIO) -> None:
        client.settimeout(IDLE_SECONDS)
        self._track(client, add=True)
        upstream: tuple[socket.socket, BinaryIO] | None = None
        try:
            while True:
                head = read_head(reader)
                if head is None or len(head.start) < 3:
                    return
                method, target = head.start[0].upper(), head.start[1]
                if "100-continue" in head.header("expect").lower():
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                hook = self.on_request
                if hook is not None and hook(method, target):
                    self._record(method, target, "cut")
                    return
                fault = self._decide(method, target)
                if fault is not None:
                    keep = self._break(client, reader, head, fault, target)
                elif upstream is None:
                    upstream = self._connect()
                    keep = self._relay(client, reader, head, target, upstream)
                else:
                    keep = self._relay(client, reader, head, target, upstream)
                if not keep:
                    return
        except (Closed, OSError, ValueError):
            return
        finally:
            if upstream is not None:
                self._track(upstream[0], add=False)
                _close(upstream[0])
            self._track(client, add=False)
            _close(client)

    def _connect(self) -> tuple[socket.socket, BinaryIO]:
        sock = socket.create_connection(self.upstream)
        sock.settimeout(IDLE_SECONDS)
        self._track(sock, add=True)
        return sock, sock.makefile("rb")

    def _relay(
        self,
        client: socket.socket,
        reader: BinaryIO,
        head: Message,
        target: str,
        upstream: tuple[socket.socket, BinaryIO],
    ) -> bool:
        """Send one request upstream and its answer back; whether the connection stays open."""
        method = head.start[0].upper()
        server, answers = upstream
        server.sendall(head.raw)
        for piece in body(reader, head, request=True):
            server.sendall(piece)
        # Counted before the client can see the answer: a test that reads the counts as soon as
        # its call returns finds every request in them.
        self._record(method, target, "forwarded")
        expected_continue = "100-continue" in head.header("expect").lower()
        while True:
            answer = read_head(answers)
            if answer is None:
                raise Closed("the server closed the connection without an answer")
            if int(answer.start[1]) >= 200 or int(answer.start[1]) == 101:
                break
            if not expected_continue:
                client.sendall(answer.raw)  # an interim answer the client did not get from us
        client.sendall(answer.raw)
        framed = answer.chunked or answer.length is not None
        for piece in body(answers, answer, request=False, method=method):
            client.sendall(piece)
        unframed = not framed and method != "HEAD" and int(answer.start[1]) not in (204, 304)
        return not (answer.closes or head.closes or unframed)

    def _break(
        self, client: socket.socket, reader: BinaryIO, head: Message, fault: Fault, target: str
    ) -> bool:
        """Answer or cut one request as ``fault`` says; whether the connection stays open."""
        method = head.start[0].upper()
        if fault == "drop-half":
            half = (head.length or 0) // 2
            if head.chunked:
                # Up to the first chunk's data: the client is cut inside the body.
                reader.readline(MAX_LINE)
            else:
                for _ in _exactly(reader, half):
                    pass
            self._record(method, target, fault)
            _reset(client)
            return False
        for _ in body(reader, head, request=True):
            pass
        self._record(method, target, fault)
        if fault == "drop":
            _reset(client)
            return False
        status, reason, code, message = ERRORS[fault]
        request_id = f"FAULT{next(self._ids):08d}"
        document = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        client.sendall(
            f"HTTP/1.1 {status} {reason}\r\n"
            "Content-Type: application/xml\r\n"
            f"Content-Length: {len(document)}\r\n"
            f"x-amz-request-id: {request_id}\r\n"
            "\r\n".encode()
            + document
        )
        return not head.closes


def _reset(sock: socket.socket) -> None:
    """Close abruptly, as a dropped connection does."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


__all__ = ["FAULTS", "Counts", "Fault", "FaultProxy", "Rule"]
