"""A gateway serving one UTC day of sessions with very large event streams, for the memory rows.

The simulator gives at most one large stream a day and no RDP recording; this server gives a
day of ``--sessions`` sessions, each with a stream of ``--stream-mib`` MiB:

- ``logs``: the output of a ``kubectl logs`` (``o`` events of 32 KiB of log lines). The gateway
  stops recording other streams at 110 MiB (HOOP_API.md).
- ``rdp``: an RDP recording as hoop's recorder writes it: one ``h`` event at 0 holding the
  handshake bytes, then ``b`` events whose payload is the JSON of a bitmap update (its pixels
  base64 inside), every payload base64 encoded; ``--stream-mib`` counts the encoded event
  lines, which hoop caps at 128 MiB, with ``metrics`` ``{event_size, bitmap_count,
  canvas_width, canvas_height}``.

Bodies are produced piece by piece and sent with chunked transfer encoding, as hoop's Go server
sends a body larger than its buffer, so the server holds one piece of a stream at a time.

    python -m benchmarks.large_day --day 2026-11-20 --sessions 10 --stream-mib 100 --kind logs
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

MIB = 1024 * 1024
ORG_ID = "0cd7f941-2bb8-4f9f-93b0-11620d4652ab"
LOG_CHUNK = 32 * 1024
TILE = 64  # pixels a side of a bitmap update
_PLACEHOLDER = "\x00event_stream\x00"


def session_ids(sessions: int) -> list[str]:
    return [str(uuid.UUID(int=0xB0B0 << 96 | n)) for n in range(1, sessions + 1)]


class Day:
    """The sessions of the day and how to render them."""

    def __init__(self, day: date, sessions: int, stream_bytes: int, kind: str) -> None:
        self.day = day
        self.kind = kind
        self.stream_bytes = stream_bytes
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        self.rows = {
            sid: self._row(sid, start + timedelta(hours=1, minutes=7 * n))
            for n, sid in enumerate(session_ids(sessions))
        }

    def _row(self, sid: str, start: datetime) -> dict[str, Any]:
        rdp = self.kind == "rdp"
        events = self.stream_bytes if rdp else 4 * -(-self.stream_bytes // 3)
        return {
            "id": sid,
            "org_id": ORG_ID,
            "start_date": start.isoformat().replace("+00:00", "Z"),
            "end_date": (start + timedelta(minutes=50)).isoformat().replace("+00:00", "Z"),
            "status": "done",
            "verb": "connect",
            "type": "custom" if rdp else "application",
            "connection_subtype": "rdp" if rdp else "kubernetes",
            "connection": "win-jump" if rdp else "k8s-prod",
            "role_name": "win-jump" if rdp else "k8s-prod",
            "resource_name": "win-jump" if rdp else "k8s-prod",
            "connection_tags": {"environment": "prod"},
            "user": "bench@example.com",
            "user_id": "bench-subject",
            "user_name": "Bench",
            "identity_type": "user",
            "exit_code": 0,
            "event_size": events,
            "script_size": 0,
            "script": None,
            "labels": None,
            "metadata": None,
            "integrations_metadata": None,
            "metrics": (
                {
                    "event_size": events,
                    "bitmap_count": self._bitmaps(),
                    "canvas_width": 1280,
                    "canvas_height": 720,
                }
                if rdp
                else {"truncated": False, "event_size": events}
            ),
            "ai_analysis": None,
            "guardrails_info": None,
            "review": None,
        }

    def _bitmaps(self) -> int:
        return max(1, self.stream_bytes // len(self._bitmap_line(0, random.Random(0))))

    def list_rows(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        rows = [
            r for r in self.rows.values() if start <= datetime.fromisoformat(r["start_date"]) <= end
        ]
        return sorted(rows, key=lambda r: (r["start_date"], r["id"]), reverse=True)

    def body(self, sid: str) -> Iterator[bytes]:
        """The get body, piece by piece: the record, its stream in the middle."""
        record = {**self.rows[sid], "script": {"data": ""}, "event_stream": _PLACEHOLDER}
        head, tail = orjson.dumps(record).split(orjson.dumps(_PLACEHOLDER))
        yield head
        yield from self._rdp_stream(sid) if self.kind == "rdp" else self._log_stream(sid)
        yield tail + b"\n"

    def _log_stream(self, sid: str) -> Iterator[bytes]:
        rng = random.Random(sid)
        paths = ("/api/orders", "/api/users", "/healthz", "/api/payments/charge", "/metrics")
        yield b"["
        sent = n = 0
        while sent < self.stream_bytes:
            lines = []
            size = 0
            while size < min(LOG_CHUNK, self.stream_bytes - sent):
                line = (
                    f"2026-11-20T10:{n // 600 % 60:02d}:{n // 10 % 60:02d}.{n % 1000:03d}Z INFO "
                    f"request id={rng.getrandbits(64):016x} path={rng.choice(paths)} "
                    f"status={rng.choice((200, 200, 200, 201, 404, 500))} ms={rng.randrange(1, 900)}\n"
                ).encode()
                lines.append(line)
                size += len(line)
                n += 1
            payload = b"".join(lines)[: self.stream_bytes - sent]
            sep = b"," if sent else b""
            yield sep + orjson.dumps(
                [round(sent / MIB, 3), "o", base64.b64encode(payload).decode()]
            )
            sent += len(payload)
        yield b"]"

    # hoop: gateway/rdp/recorder.go (BitmapEvent, the "h" and "b" events, maxRecordedBytes)
    @staticmethod
    def _bitmap_line(n: int, rng: random.Random) -> bytes:
        pixels = rng.randbytes(TILE * TILE * 4)
        update = {
            "x": TILE * (n % 20),
            "y": TILE * (n // 20 % 11),
            "width": TILE,
            "height": TILE,
            "bits_per_pixel": 32,
            "compressed": False,
            "data": base64.b64encode(pixels).decode(),
        }
        return orjson.dumps(
            [round(0.04 * n, 3), "b", base64.b64encode(orjson.dumps(update)).decode()]
        )

    def _rdp_stream(self, sid: str) -> Iterator[bytes]:
        rng = random.Random(sid)
        handshake = orjson.dumps([0, "h", base64.b64encode(rng.randbytes(1100)).decode()])
        yield b"[" + handshake
        sent = len(handshake)
        n = 1
        while True:
            line = self._bitmap_line(n, rng)
            if sent + len(line) + 1 > self.stream_bytes:  # the recorder's cap on encoded lines
                break
            yield b"," + line
            sent += len(line) + 1
            n += 1
        yield b"]"


def handler(day: Day, token: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, doc: Any) -> None:
            data = orjson.dumps(doc) + b"\n"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {token}":
                self._json(401, {"message": "access denied"})
                return
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if url.path == "/api/userinfo":
                self._json(
                    200,
                    {
                        "id": "bench",
                        "email": "bench@example.com",
                        "name": "Bench",
                        "groups": ["admin"],
                        "is_admin": True,
                        "org_id": ORG_ID,
                    },
                )
            elif url.path == "/api/sessions":
                rows = day.list_rows(
                    datetime.fromisoformat(query["start_date"]),
                    datetime.fromisoformat(query["end_date"]),
                )
                offset, limit = int(query.get("offset", 0)), min(int(query.get("limit", 20)), 100)
                page = [{**r, "script": None} for r in rows[offset : offset + limit]]
                total = None if query.get("count") == "none" else len(rows)
                self._json(
                    200,
                    {
                        "data": page,
                        "total": total,
                        "total_is_capped": False,
                        "has_next_page": offset + limit < len(rows),
                    },
                )
            elif url.path.startswith("/api/sessions/") and url.path.rsplit("/", 1)[1] in day.rows:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                # hoop: gateway/api/session/session.go (json.NewEncoder straight to the writer)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in _pieces(day.body(url.path.rsplit("/", 1)[1])):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self._json(404, {"message": "not found"})

    return Handler


def _pieces(parts: Iterator[bytes], size: int = MIB) -> Iterator[bytes]:
    """Parts gathered into pieces of about ``size`` bytes (one socket write each)."""
    pending: list[bytes] = []
    held = 0
    for part in parts:
        pending.append(part)
        held += len(part)
        if held >= size:
            yield b"".join(pending)
            pending, held = [], 0
    if pending:
        yield b"".join(pending)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.large_day", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--day", type=date.fromisoformat, required=True)
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--stream-mib", type=float, default=100.0)
    p.add_argument("--kind", choices=("logs", "rdp"), default="logs")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    token = os.environ.get("HOOP_API_TOKEN", "bench-token")
    day = Day(args.day, args.sessions, int(args.stream_mib * MIB), args.kind)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(day, token))
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
