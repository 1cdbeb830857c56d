"""A hostile hoop gateway: a small real HTTP server on loopback that answers what a test scripts.

The simulator behaves like hoop; this server behaves like whatever a test needs a broken gateway,
proxy or attacker to do: invalid JSON, wrong types, endless paging, answers for another id, HTML
with status 200, bodies dribbled byte by byte, redirects, TLS with a self-signed certificate.

    with HostileGateway(token="t") as gw:
        gw.add_day(day, [record, ...])          # list rows and get bodies served from the records
        gw.list_for_day[day] = endless_pages()  # or script a route of one day
        gw.bodies[sid] = Reply(200, b"<html>")  # or the answer to one get
        gw.url, gw.requests                     # where it listens, what it was asked

A route is answered by a function of the ``Request`` returning a ``Reply``. Without a script,
``/api/userinfo`` says the token is an admin, ``/api/sessions`` pages the rows of the day the
window starts on, and ``/api/sessions/{id}`` answers the record as JSON (404 when unknown).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

ADMIN_USERINFO = {
    "id": "hostile-admin",
    "email": "sync@hostile.example",
    "name": "Sync",
    "groups": ["admin"],
    "is_admin": True,
    "org_id": "0cd7f941-2bb8-4f9f-93b0-11620d4652ab",
}


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]

    @property
    def window_day(self) -> date | None:
        start = self.query.get("start_date")
        return date.fromisoformat(start[:10]) if start else None

    @property
    def offset(self) -> int:
        return int(self.query.get("offset", "0"))

    @property
    def limit(self) -> int:
        return int(self.query.get("limit", "20"))


@dataclass
class Reply:
    """One answer. ``drop`` closes the connection without a word; ``dribble`` sends the body one
    byte at a time, this many seconds apart (until the server stops)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    dribble: float | None = None
    delay: float = 0.0


def json_reply(doc: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(doc) + b"\n")


def error_reply(status: int, message: str) -> Reply:
    return Reply(status, orjson.dumps({"message": message}))


def page_reply(rows: list[Any], *, has_next_page: Any, total: Any = None) -> Reply:
    return json_reply(
        {"data": rows, "total": total, "total_is_capped": False, "has_next_page": has_next_page}
    )


def paged(rows: list[Any], *, page_size: int | None = None) -> Callable[[Request], Reply]:
    """A list route that pages ``rows`` as hoop does (``has_next_page`` when rows remain)."""

    def answer(request: Request) -> Reply:
        size = page_size or request.limit
        chunk = rows[request.offset : request.offset + size]
        total = len(rows) if request.query.get("count") in ("capped", "exact") else None
        return page_reply(chunk, has_next_page=request.offset + size < len(rows), total=total)

    return answer


Route = Callable[[Request], Reply]


class HostileGateway:
    """A scripted gateway on 127.0.0.1 (optionally TLS), in a thread; use as a context manager."""

    def __init__(self, *, token: str = "hostile-token", tls: ssl.SSLContext | None = None) -> None:
        self.token = token
        self.tls = tls
        self.userinfo: Route = lambda _request: json_reply(ADMIN_USERINFO)
        self.rows: dict[date, list[Any]] = {}
        self.records: dict[str, Any] = {}
        self.list_for_day: dict[date, Route] = {}
        self.bodies: dict[str, Reply | Callable[[Request], Reply]] = {}
        self.requests: list[Request] = []
        self.handshakes = 0
        # The gateway's clock, as its Date header says it: this far from the machine's.
        self.clock_offset = timedelta(0)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.gateway = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="hostile-gateway", daemon=True
        )
        scheme = "https" if tls else "http"
        self.port = self._server.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    # -- scripting ----------------------------------------------------------------------------

    def add_day(self, day: date, records: list[dict[str, Any]]) -> None:
        """Serve ``records`` as the sessions of ``day``: list rows and get bodies."""
        self.rows[day] = [list_row(r) for r in records]
        for record in records:
            self.records[str(record["id"]).lower()] = record

    def routed(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
        if self.stopping.is_set():  # shutting down: refuse at once, so that clients give up
            return error_reply(401, "access denied")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return error_reply(401, "access denied")
        if request.path == "/api/userinfo":
            return self.userinfo(request)
        if request.path == "/api/sessions":
            day = request.window_day
            if day in self.list_for_day:
                return self.list_for_day[day](request)
            return paged(self.rows.get(day, []))(request) if day else error_reply(422, "no date")
        if request.path.startswith("/api/sessions/"):
            sid = request.path.removeprefix("/api/sessions/")
            scripted = self.bodies.get(sid)
            if scripted is not None:
                return scripted(request) if callable(scripted) else scripted
            if sid in self.records:
                return json_reply(self.records[sid])
            return error_reply(404, "not found")
        return error_reply(404, "not found")

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> HostileGateway:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def list_row(record: dict[str, Any]) -> dict[str, Any]:
    """What hoop's list shows of a record: no stream, no input, no AI analysis."""
    row = {k: v for k, v in record.items() if k != "event_stream"}
    row["script"] = None
    row["ai_analysis"] = None
    row["guardrails_info"] = None
    return row


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    gateway: HostileGateway

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the request's thread, so a client that refuses the
        # certificate costs that thread only.
        if self.gateway.tls is not None:
            self.gateway.handshakes += 1
            try:
                request = self.gateway.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up on a dribbled or dropped answer is expected here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY the body waits for the
    # client's delayed ACK (40 ms a request).
    disable_nagle_algorithm = True
    server: _Server

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header, on the gateway's clock (``HostileGateway.clock_offset``)."""
        moment = datetime.now(UTC) + self.server.gateway.clock_offset
        return formatdate(moment.timestamp(), usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        gateway = self.server.gateway
        reply = gateway.routed(Request(parts.path, query, headers))
        if reply.delay:
            gateway.stopping.wait(reply.delay)
        if reply.drop:
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if reply.dribble is None:
            self.wfile.write(reply.body)
            return
        self.close_connection = True
        for i in range(len(reply.body)):
            if gateway.stopping.wait(reply.dribble):
                return
            self.wfile.write(reply.body[i : i + 1])
            self.wfile.flush()
