"""Configuration of the simulated gateway: what data it holds and how it misbehaves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

MIB = 1024 * 1024
# The gateway stops recording at 110 MiB; the simulator goes up to 100 MiB of payload.
MAX_LARGE_STREAM_BYTES = 100 * MIB
# Bounds of `events_per_session`, the mean number of events of a session's recorded stream.
MAX_EVENTS_PER_SESSION = 10_000

FAULT_KINDS: tuple[str, ...] = ("429", "500", "502", "503", "504", "drop", "truncate", "slow")
PROFILES: tuple[str, ...] = ("realistic", "plain")


@dataclass(frozen=True)
class TokenIdentity:
    """Who a token is: the principal the gateway resolves a bearer token to."""

    email: str
    name: str
    subject: str
    groups: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.groups

    @property
    def sees_everything(self) -> bool:
        """Admins and auditors see every session of the org; anyone else a filtered view."""
        return "admin" in self.groups or "auditor" in self.groups


ADMIN_IDENTITY = TokenIdentity(
    email="warehouse-sync@acme.example",
    name="Warehouse Sync",
    subject="hpk_warehouse_sync",
    groups=("admin",),
)
# What the legacy `Api-Key:` header authenticates as on a self-hosted gateway.
API_KEY_IDENTITY = TokenIdentity(
    email="api-key@acme.example", name="API Key", subject="API_KEY", groups=("admin",)
)


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that decides what the simulator serves.

    The data is a pure function of (seed, profile, the day-shape knobs, events_per_session,
    newer_gateway, now); the rest shapes the HTTP behaviour. See README.md in this package for every knob.
    """

    seed: int = 7
    start: date = date(2026, 11, 1)
    days: int = 7
    sessions_per_day: int = 200
    now: datetime | None = None
    token: str = "demo-token"  # noqa: S105  # a documented demo default, not a secret
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    legacy_gateway: bool = False
    # Shapes of gateways newer than 1.148 (HOOP_API.md, "Open sets"): changes the data.
    newer_gateway: bool = False
    profile: str = "realistic"
    # Who `token` is, and more tokens with their own identities (e.g. a non-auditor reviewer).
    identity: TokenIdentity = ADMIN_IDENTITY
    extra_tokens: Mapping[str, TokenIdentity] = field(default_factory=dict)
    # Multi-tenant gateways (such as the hosted one) refuse the legacy `Api-Key:` header.
    multi_tenant: bool = False
    # Shape of the days.
    day_sizes: Mapping[date, int] = field(default_factory=dict)
    burst_size: int = 0
    boundary_sessions: bool = True
    large_streams: int = 0
    large_stream_bytes: int = 8 * MIB
    # Mean events of a recorded stream (None: the original shapes, about 5 on average).
    events_per_session: int | None = None
    # Faults.
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    max_consecutive_faults: int = 3
    slow_response_s: float = 2.0
    failing_days: frozenset[date] = frozenset()
    failing_sessions: frozenset[str] = frozenset()
    # Where `serve` listens (port 0: a free port).
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; expected one of {PROFILES}")
        if self.days < 0 or self.sessions_per_day < 0 or self.burst_size < 0:
            raise ValueError("days, sessions_per_day and burst_size must not be negative")
        if any(n < 0 for n in self.day_sizes.values()):
            raise ValueError("day_sizes must not be negative")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be within 0..1, got {self.fault_rate}")
        if self.latency_ms < 0 or self.slow_response_s < 0:
            raise ValueError("latency_ms and slow_response_s must not be negative")
        if not 0 < self.large_stream_bytes <= MAX_LARGE_STREAM_BYTES:
            raise ValueError(f"large_stream_bytes must be within 1..{MAX_LARGE_STREAM_BYTES}")
        if self.large_streams < 0:
            raise ValueError("large_streams must not be negative")
        events = self.events_per_session
        if events is not None and (
            isinstance(events, bool)
            or not isinstance(events, int)
            or not 1 <= events <= MAX_EVENTS_PER_SESSION
        ):
            raise ValueError(
                f"events_per_session must be an integer within 1..{MAX_EVENTS_PER_SESSION} "
                f"(or None), got {events!r}"
            )
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown or not self.fault_kinds:
            raise ValueError(f"fault_kinds must be a non-empty subset of {FAULT_KINDS}")
        if self.max_consecutive_faults < 1:
            raise ValueError("max_consecutive_faults must be at least 1")
        if self.now is not None:
            object.__setattr__(self, "now", as_utc(self.now))
        object.__setattr__(
            self, "failing_sessions", frozenset(s.lower() for s in self.failing_sessions)
        )

    @property
    def end(self) -> date:
        """The first day after the simulated range."""
        return self.start + timedelta(days=self.days)

    @property
    def clock(self) -> datetime:
        """The gateway's clock: `now`, or one day after the end of the last simulated day."""
        if self.now is not None:
            return self.now
        return datetime.combine(self.end + timedelta(days=1), time(), tzinfo=UTC)

    def day_size(self, day: date) -> int:
        return self.day_sizes.get(day, self.sessions_per_day)

    def tokens(self) -> dict[str, TokenIdentity]:
        return {**self.extra_tokens, self.token: self.identity}


def as_utc(value: datetime) -> datetime:
    """A naive datetime is taken as UTC; an aware one is converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
