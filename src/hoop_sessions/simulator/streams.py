"""Event streams: what each session recorded, generated on demand from a seed.

A stream is never stored: the payloads are re-derived from the session's stream seed on every
request, so a 100 MiB stream costs the server one chunk of memory at a time. Small streams are
kept in a bounded cache by the dataset; large ones are produced chunk by chunk.
"""

from __future__ import annotations

import base64
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from .seeds import seeded

US = 1_000_000


@dataclass(frozen=True, slots=True)
class Event:
    elapsed_us: int
    type: str  # "i" input, "o" output, "e" error
    payload: bytes


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """How to re-create a session's stream. `kind` is one of KINDS."""

    kind: str
    seed: int
    run_us: int
    size: int = 0  # total payload bytes, large streams only

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown stream kind {self.kind!r}")


KINDS = (
    "shell",  # terminal output with ANSI colours
    "sql",  # SQL text in, tab-separated tables out
    "pgwire",  # binary Postgres wire-protocol messages, `i` events only
    "http",  # HTTP requests and responses
    "rdp",  # binary frames: invalid UTF-8
    "latin1",  # SQL output with Latin-1 bytes: invalid UTF-8
    "nul",  # SQL output with NUL bytes: valid UTF-8, but a control byte
    "empty",  # the stream exists and has no event
    "none",  # the session has no stream at all: the key is absent
    "undecodable",  # the gateway cannot encode it and answers with its error message
    "large",  # `size` bytes of log output, produced lazily
)
# Kinds whose `i` events are raw Postgres protocol messages.
WIRE_PROTOCOL_KINDS = frozenset({"pgwire"})

UNDECODABLE_MESSAGE = (
    "An internal error occurred: unable to decode the event stream due to invalid characters."
    "\nPlease download the session as an alternative."
)

_ESC = "\x1b"
_SHELL_COMMANDS: tuple[tuple[str, str], ...] = (
    (
        "ls -la",
        "total 24\r\ndrwxr-xr-x 3 app app 4096 .\r\n{blue}config{reset}\r\n{green}run.sh{reset}\r\n",
    ),
    (
        "kubectl get pods -n payments",
        "NAME                 READY   STATUS    RESTARTS\r\napi-7d9f8-x2l4k   1/1     {green}Running{reset}   0\r\n",
    ),
    (
        "tail -n 3 /var/log/app.log",
        "INFO request served path=/health status=200\r\nWARN slow query took=1.2s\r\n",
    ),
    (
        "systemctl status nginx",
        "{green}●{reset} nginx.service - A high performance web server\r\n   Active: {green}active (running){reset}\r\n",
    ),
    (
        "df -h /",
        "Filesystem Size Used Avail Use% Mounted on\r\n/dev/nvme0n1p1 100G 61G 40G 61% /\r\n",
    ),
    ("cat /etc/os-release | head -2", 'NAME="Debian GNU/Linux"\r\nVERSION_ID="12"\r\n'),
    ("grep -c ERROR app.log", "17\r\n"),
    ("kubectl rollout restart deploy/api", "deployment.apps/api restarted\r\n"),
)
_SHELL_ERRORS = ("bash: kubctl: command not found\r\n", "cat: secrets.env: Permission denied\r\n")
_SQL: tuple[tuple[str, str], ...] = (
    (
        "SELECT id, email FROM customers WHERE created_at > now() - interval '1 day' LIMIT 3;",
        "id\temail\n1041\t***@***.com\n1042\t***@***.com\n1043\t***@***.com\n(3 rows)\n",
    ),
    ("SELECT count(*) FROM orders WHERE status = 'pending';", "count\n212\n(1 row)\n"),
    ("UPDATE orders SET status = 'cancelled' WHERE id = 88121;", "UPDATE 1\n"),
    (
        "SELECT o.id, o.total FROM orders o JOIN payments p ON p.order_id = o.id WHERE p.amount < 0 AND o.total > 100;",
        "id\ttotal\n7781\t129.90\n(1 row)\n",
    ),
    (
        "EXPLAIN SELECT * FROM invoices WHERE due < now();",
        "Seq Scan on invoices  (cost=0.00..431.00 rows=9 width=72)\n",
    ),
    (
        "db.products.find({sku: 'A-1021'}).limit(1)",
        "{ _id: ObjectId('65a1'), sku: 'A-1021', stock: 14 }\n",
    ),
    (
        "SHOW PROCESSLIST;",
        "Id\tUser\tHost\tdb\tCommand\tTime\n51\tapp\t10.0.3.4\torders\tQuery\t0\n",
    ),
    ("DELETE FROM sessions WHERE expires_at < now() - interval '30 days';", "DELETE 4312\n"),
)
_SQL_ERRORS = (
    "ERROR 1146 (42S02): Table 'orders.order_items_old' doesn't exist\n",
    "ERROR:  permission denied for table salaries\n",
)
_HTTP = (
    (
        "GET /api/orders/7781 HTTP/1.1\r\nHost: web-api\r\nAccept: application/json\r\n\r\n",
        'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"id":7781,"total":129.9,"currency":"EUR"}',
    ),
    (
        "GET /api/search?q=shoes&size=2 HTTP/1.1\r\nHost: web-api\r\n\r\n",
        'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"hits":["<b>shoes</b> red","shoes & socks"]}',
    ),
    ("DELETE /api/cache HTTP/1.1\r\nHost: web-api\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n"),
)
_LOG_LINE = "{t} level=info pod=api-7d9f8-x2l4k msg=request_served path=/v1/orders/{n} status=200 took_ms={ms}\n"
# Large-stream payloads come in chunks of a multiple of 3 bytes, so that the base64 of the
# whole output is the concatenation of the base64 of each chunk.
LARGE_CHUNK = 3 * 65_536


def script_for(kind: str, rng: random.Random) -> str:
    """The input of an `exec` session on a connection whose streams are of this kind."""
    if kind in ("shell", "large"):
        return "\n".join(cmd for cmd, _ in rng.sample(_SHELL_COMMANDS, 2))
    if kind == "http":
        return rng.choice(_HTTP)[0]
    return rng.choice(_SQL)[0]


def small_events(spec: StreamSpec, script: str, user: str) -> tuple[Event, ...]:
    """The whole recorded stream of a session (not for `large`, `none` or `empty`)."""
    rng = seeded(spec.seed)
    kind = spec.kind
    if kind in ("empty", "none", "large"):
        return ()
    if kind == "pgwire":
        raw = _pgwire(rng, script, user)
    elif kind in ("shell", "undecodable"):
        raw = _shell(rng, script, user)
    elif kind == "http":
        raw = _http(rng, script)
    elif kind == "rdp":
        raw = [("o", rng.randbytes(rng.randint(40, 900))) for _ in range(rng.randint(3, 12))]
    else:
        raw = _sql(rng, script, kind)
    return _spread(rng, raw, spec.run_us)


def _spread(rng: random.Random, raw: Sequence[tuple[str, bytes]], run_us: int) -> tuple[Event, ...]:
    times = sorted(rng.randint(0, max(run_us, 1)) for _ in raw)
    if times:
        times[0] = min(times[0], rng.randint(0, 400_000))
    return tuple(Event(t, typ, payload) for t, (typ, payload) in zip(times, raw, strict=True))


def _ansi(text: str) -> str:
    return text.format(green=f"{_ESC}[01;32m", blue=f"{_ESC}[01;34m", reset=f"{_ESC}[0m")


def _shell(rng: random.Random, script: str, user: str) -> list[tuple[str, bytes]]:
    prompt = _ansi("{green}" + user.split("@")[0] + "@host{reset}:{blue}~{reset}$ ").encode()
    commands = (
        script.split("\n")
        if script
        else [c for c, _ in rng.sample(_SHELL_COMMANDS, rng.randint(1, 4))]
    )
    outputs = dict(_SHELL_COMMANDS)
    raw: list[tuple[str, bytes]] = []
    for command in commands:
        raw.append(("o", prompt))
        raw.append(("i", (command + "\r").encode()))
        if rng.random() < 0.15:
            raw.append(("e", rng.choice(_SHELL_ERRORS).encode()))
        else:
            raw.append(("o", _ansi(outputs.get(command, "ok\r\n")).encode()))
    raw.append(("o", prompt))
    return raw


def _sql(rng: random.Random, script: str, kind: str) -> list[tuple[str, bytes]]:
    outputs = dict(_SQL)
    statements = [script] if script else [q for q, _ in rng.sample(_SQL, rng.randint(1, 4))]
    raw: list[tuple[str, bytes]] = []
    for statement in statements:
        raw.append(("i", (statement + "\n").encode()))
        if rng.random() < 0.1:
            raw.append(("e", rng.choice(_SQL_ERRORS).encode()))
            continue
        out = outputs.get(statement, "OK\n").encode()
        if kind == "latin1":
            out += "caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1") + b"\xff\xfe\n"
        elif kind == "nul":
            out += b"blob\t\x00\x00\x01\x02\n"
        raw.append(("o", out))
    return raw


def _http(rng: random.Random, script: str) -> list[tuple[str, bytes]]:
    responses = dict(_HTTP)
    requests = [script] if script else [r for r, _ in rng.sample(_HTTP, rng.randint(1, 3))]
    raw: list[tuple[str, bytes]] = []
    for request in requests:
        raw.append(("i", request.encode()))
        raw.append(("o", responses.get(request, "HTTP/1.1 200 OK\r\n\r\n").encode()))
    return raw


def _pg_message(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("!I", len(body) + 4) + body


def _pgwire(rng: random.Random, script: str, user: str) -> list[tuple[str, bytes]]:
    startup_body = (
        struct.pack("!I", 196_608) + b"user\x00" + user.encode() + b"\x00database\x00app\x00\x00"
    )
    raw: list[tuple[str, bytes]] = [("i", struct.pack("!I", len(startup_body) + 4) + startup_body)]
    queries = [script] if script else [q for q, _ in rng.sample(_SQL[:5], rng.randint(1, 4))]
    for query in queries:
        if rng.random() < 0.5:
            raw.append(("i", _pg_message(b"Q", query.encode() + b"\x00")))
        else:  # extended protocol: Parse, Bind, Execute, Sync in one packet
            packet = (
                _pg_message(b"P", b"\x00" + query.encode() + b"\x00\x00\x00")
                + _pg_message(b"B", b"\x00\x00\x00\x00\x00\x00\x00\x00")
                + _pg_message(b"E", b"\x00\x00\x00\x00\x00")
                + _pg_message(b"S", b"")
            )
            raw.append(("i", packet))
    raw.append(("i", _pg_message(b"X", b"")))
    return raw


def pg_queries(payload: bytes) -> list[bytes]:
    """The SQL text inside the simple (Q) and extended (P) messages of one wire packet."""
    queries: list[bytes] = []
    pos = 0
    while pos + 5 <= len(payload):
        tag = payload[pos : pos + 1]
        (length,) = struct.unpack("!I", payload[pos + 1 : pos + 5])
        body = payload[pos + 5 : pos + 1 + length]
        if tag == b"Q":
            queries.append(body.rstrip(b"\x00"))
        elif tag == b"P":
            statement_end = body.index(b"\x00")
            queries.append(body[statement_end + 1 : body.index(b"\x00", statement_end + 1)])
        elif tag not in b"BESXDCHF":  # a startup packet: no tag byte, nothing to extract
            break
        pos += 1 + length
    return queries


def utf8_is_json_safe(output: bytes) -> bool:
    """Whether the gateway's `%q` quoting of this output is still valid JSON.

    The gateway builds the utf8 rendering with Go's `%q`, which writes invalid UTF-8 and most
    control bytes as `\\xNN` or `\\a`/`\\v`: not JSON, so its encoder fails and it falls back to
    its error message. Only `\\b \\t \\n \\f \\r` survive.
    """
    try:
        output.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(
        (b < 0x20 and b not in (0x08, 0x09, 0x0A, 0x0C, 0x0D)) or b == 0x7F for b in output
    )


def rune_count(output: bytes) -> int:
    """Go's utf8.RuneCount: each invalid byte counts as one rune."""
    return len(output.decode("utf-8", errors="surrogateescape"))


def format_elapsed(us: int) -> bytes:
    """Seconds as Go writes a float64 with at most 6 decimals: no exponent, no trailing zeros."""
    seconds, micros = divmod(us, US)
    if micros == 0:
        return str(seconds).encode()
    return f"{seconds}.{micros:06d}".rstrip("0").encode()


def raw_event_json(event: Event) -> bytes:
    return (
        b"["
        + format_elapsed(event.elapsed_us)
        + b',"'
        + event.type.encode()
        + b'","'
        + base64.b64encode(event.payload)
        + b'"]'
    )


def raw_stream_json(events: Sequence[Event]) -> bytes:
    return b"[" + b",".join(raw_event_json(e) for e in events) + b"]"


class LargeStream:
    """`size` bytes of log output in LARGE_CHUNK events, spread evenly over the run."""

    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        self.count = max(1, -(-spec.size // LARGE_CHUNK))
        rng = seeded(spec.seed)
        lines = []
        total = 0
        n = 0
        while total < LARGE_CHUNK:
            line = _LOG_LINE.format(
                t=f"{n // 600:02d}:{n // 10 % 60:02d}:{n % 10}0Z",
                n=rng.randint(1, 999_999),
                ms=rng.randint(1, 900),
            )
            lines.append(line)
            total += len(line)
            n += 1
        # Only printable ASCII and newlines, none of " \ < > &: the JSON-escaped length of any
        # prefix is its length plus its newline count, so sizes are known without rendering.
        self._block = "".join(lines).encode()[:LARGE_CHUNK]

    def elapsed_us(self, k: int) -> int:
        return k * self.spec.run_us // self.count

    def payload_size(self, k: int) -> int:
        return (
            LARGE_CHUNK if k < self.count - 1 else self.spec.size - LARGE_CHUNK * (self.count - 1)
        )

    def payload(self, k: int) -> bytes:
        header = f"{k:08d} ".encode()
        return (header + self._block[len(header) :])[: self.payload_size(k)]

    def visible(self, cutoff_us: int | None) -> int:
        """How many events were flushed by `cutoff_us` (None: the whole stream)."""
        if cutoff_us is None:
            return self.count
        return sum(1 for k in range(self.count) if self.elapsed_us(k) <= cutoff_us)

    def newlines(self, k: int) -> int:
        return self.payload(k).count(b"\n")
