"""Transient failures of the kind the proxies in front of a gateway produce.

Whether a request fails is a pure function of (seed, request line, how many times that same
request line was seen before), so a run is reproducible whatever the interleaving of other
requests. A request line never fails more than `max_consecutive_faults` times in a row: a client
that retries always gets through in the end.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .config import SimulatorConfig

_HTML = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
REASONS = {
    200: "OK",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


@dataclass(frozen=True)
class Fault:
    kind: str  # one of config.FAULT_KINDS
    retry_after: int = 0  # seconds, for 429

    @property
    def status(self) -> int | None:
        return int(self.kind) if self.kind.isdigit() else None

    def body(self) -> tuple[str, bytes]:
        """(content type, body) of a status fault: JSON from the gateway, HTML from nginx."""
        if self.kind == "429":
            return "application/json", b'{"message":"Too Many Requests"}'
        if self.kind == "500":
            return "application/json; charset=utf-8", b'{"message":"internal server error"}'
        status = int(self.kind)
        return "text/html", _HTML.format(code=status, reason=REASONS[status]).encode()


class FaultInjector:
    def __init__(self, cfg: SimulatorConfig) -> None:
        self.seed = cfg.seed
        self.rate = cfg.fault_rate
        self.kinds = cfg.fault_kinds
        self.cap = cfg.max_consecutive_faults
        self._seen: dict[str, int] = {}
        self._streak: dict[str, int] = {}

    def decide(self, request_line: str) -> Fault | None:
        """The fault for this arrival of the request, if any."""
        if self.rate <= 0:
            return None
        attempt = self._seen.get(request_line, 0)
        self._seen[request_line] = attempt + 1
        digest = hashlib.sha256(f"{self.seed}\x00{request_line}\x00{attempt}".encode()).digest()
        draw = int.from_bytes(digest[:8], "big") / 2**64
        streak = self._streak.get(request_line, 0)
        if draw >= self.rate or streak >= self.cap:
            self._streak[request_line] = 0
            return None
        self._streak[request_line] = streak + 1
        kind = self.kinds[int.from_bytes(digest[8:12], "big") % len(self.kinds)]
        return Fault(kind, retry_after=digest[12] % 2)
