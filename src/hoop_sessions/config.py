"""Settings, read from the environment (the interface contract in ARCHITECTURE.md)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from hoop_sessions.errors import ConfigError
from hoop_sessions.store import ObjectStore, is_url, open_store, redact


class Secret:
    """A value that never shows itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def clean_token(token: Secret) -> Secret:
    """The token without surrounding whitespace, checked to be sendable in an HTTP header.

    A token read from an .env file or a Kubernetes secret often ends with a newline, a space or a
    CR: those are stripped. A control character or a character outside Latin-1 inside it cannot
    be sent at all (the HTTP layer refuses it with an error that quotes the header), and a space
    inside makes hoop refuse it (it splits ``Bearer <token>`` on spaces and wants two parts:
    hoop: gateway/api/apiroutes/auth.go, parseToken). The error names the character and its
    position, never the token.
    """
    value = token.get()
    stripped = value.strip()
    if not stripped:
        raise ConfigError("HOOP_API_TOKEN holds only whitespace: export the token itself")
    for position, char in enumerate(stripped, start=1):
        if unicodedata.category(char) == "Cc":
            problem = "a control character"
        elif ord(char) > 0xFF:
            problem = "a character outside Latin-1, which an HTTP header cannot carry"
        elif char.isspace():
            problem = "whitespace, which hoop does not accept inside a token"
        else:
            continue
        name = unicodedata.name(char, "")
        label = f"U+{ord(char):04X}" + (f" {name}" if name else "")
        raise ConfigError(
            f"HOOP_API_TOKEN holds {problem} ({label}) at position {position} of "
            f"{len(stripped)}: copy the token again from hoop (it is not shown here)"
        )
    return token if stripped == value else Secret(stripped)


@dataclass(frozen=True)
class Settings:
    """Everything the sync needs to know. Build with ``Settings.from_env()`` or directly."""

    api_url: str | None = None
    api_token: Secret | None = field(default=None, repr=False)
    auth_header: str = "bearer"
    # The local data directory, or with an object store (data_url), the local working directory
    # where a run writes before it publishes to the store (HOOP_WORK_DIR).
    data_dir: Path = Path("data")
    # HOOP_DATA_DIR when it is an object-store URL (s3://bucket/prefix, gs://, az://, file://).
    data_url: str | None = None
    sync_start_date: date | None = None
    concurrency: int = 8
    timeout_seconds: float = 60.0
    retry_attempts: int = 6
    retry_max_seconds: float = 300.0
    allow_partial_visibility: bool = False
    lock_timeout_seconds: float = 300.0
    # 0: no cap. Set, sessions of days older than this that are still not final are not read
    # again (the run says which days it left).
    final_horizon_days: int = 0
    rolling_days: int = 3
    # A day is read only once this long past its end on the gateway's clock.
    close_margin_minutes: float = 15.0
    # A day listed less than this long after its end is listed again later.
    settle_hours: float = 25.0
    ca_bundle: str | None = None
    allow_insecure_http: bool = False
    store_output: str = "full"
    # A run longer than this publishes the warehouse on the way, not only at its end.
    publish_minutes: float = 30.0

    def __post_init__(self) -> None:
        # Every way a Settings gets a token passes here: from_env, a direct construction, and
        # dataclasses.replace (the Dagster resource's way).
        if self.api_token is not None:
            object.__setattr__(self, "api_token", clean_token(self.api_token))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        token = env.get("HOOP_API_TOKEN") or None
        start = env.get("HOOP_SYNC_START_DATE") or None
        values: dict[str, object] = dict(
            api_url=(env.get("HOOP_API_URL") or None),
            api_token=Secret(token) if token else None,
            auth_header=env.get("HOOP_API_AUTH_HEADER", "bearer").strip().lower() or "bearer",
            **_data_location(env),
            sync_start_date=_parse_date("HOOP_SYNC_START_DATE", start) if start else None,
            concurrency=_int(env, "HOOP_CONCURRENCY", 8, minimum=1),
            timeout_seconds=_float(env, "HOOP_TIMEOUT_SECONDS", 60.0),
            retry_attempts=_int(env, "HOOP_RETRY_ATTEMPTS", 6, minimum=1),
            retry_max_seconds=_float(env, "HOOP_RETRY_MAX_SECONDS", 300.0),
            allow_partial_visibility=_bool(env, "HOOP_ALLOW_PARTIAL_VISIBILITY"),
            lock_timeout_seconds=_float(env, "HOOP_WAREHOUSE_LOCK_TIMEOUT", 300.0),
            final_horizon_days=_int(env, "HOOP_FINAL_HORIZON_DAYS", 0, minimum=0),
            close_margin_minutes=_float(env, "HOOP_CLOSE_MARGIN_MINUTES", 15.0, allow_zero=True),
            settle_hours=_float(env, "HOOP_SETTLE_HOURS", 25.0, allow_zero=True),
            rolling_days=_int(env, "HOOP_ROLLING_DAYS", 3, minimum=0),
            ca_bundle=env.get("HOOP_CA_BUNDLE") or None,
            allow_insecure_http=_bool(env, "HOOP_ALLOW_HTTP"),
            store_output=_choice(env, "HOOP_STORE_OUTPUT", ("full", "hash", "none")),
            publish_minutes=_float(env, "HOOP_PUBLISH_MINUTES", 30.0),
        )
        # Overrides first, then one construction: a token given here replaces the environment's
        # before it is checked (the warehouse resource passes api_token=None and needs none).
        return cls(**{**values, **overrides})  # type: ignore[arg-type]

    @property
    def store(self) -> ObjectStore | None:
        """The object store behind HOOP_DATA_DIR, or None for a local data directory."""
        return open_store(self.data_url) if self.data_url else None

    @property
    def data_location(self) -> str:
        """Where the data is, for messages: the store's URL or the local directory."""
        return redact(self.data_url) if self.data_url else str(self.data_dir)

    @property
    def warehouse_path(self) -> Path:
        """The analysts' file: a read-only snapshot of the warehouse as of the last completed
        run, replaced as a whole by each publish (``hoop_sessions.warehouse.snapshot``)."""
        return self.data_dir / "warehouse.duckdb"

    @property
    def load_path(self) -> Path:
        """The writer's copy of the warehouse, which loads open read-write; never read by people."""
        return self.data_dir / ".writer" / "warehouse.duckdb"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    def ensure_data_dir(self) -> Path:
        """Create the data directory readable by its owner only (it holds session contents).

        Everything this process creates from here on is owner-only too (umask 077): the raw,
        lake and manifest files inside an existing directory, which an installer may have made
        world-readable, must not be.
        """
        os.umask(0o077)
        if not self.data_dir.exists():
            self.data_dir.mkdir(parents=True, mode=0o700)
            self.data_dir.chmod(0o700)  # mkdir's mode is filtered by the umask
        return self.data_dir

    def require_api(self) -> tuple[str, Secret]:
        """The base URL and token, validated; raises ConfigError with what to set."""
        if not self.api_url:
            raise ConfigError(
                "HOOP_API_URL is not set: give the gateway's base URL, e.g. https://use.hoop.dev"
            )
        if self.api_token is None:
            raise ConfigError("HOOP_API_TOKEN is not set: create an API key in hoop and export it")
        if self.auth_header not in ("bearer", "api-key"):
            raise ConfigError(
                f"HOOP_API_AUTH_HEADER must be 'bearer' or 'api-key', not {self.auth_header!r}"
            )
        parts = urlsplit(self.api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"HOOP_API_URL must be an http(s) URL, not {self.api_url!r}")
        if (
            parts.scheme == "http"
            and parts.hostname not in LOOPBACK_HOSTS
            and not self.allow_insecure_http
        ):
            raise ConfigError(
                f"HOOP_API_URL {self.api_url!r} uses plain http to a host that is not loopback: the "
                "token would cross the network unencrypted. Use https, or set HOOP_ALLOW_HTTP=1"
            )
        return self.api_url.rstrip("/"), self.api_token


def _data_location(env: Mapping[str, str]) -> dict[str, object]:
    """HOOP_DATA_DIR as a local directory, or as a store URL with its local working directory."""
    data = (env.get("HOOP_DATA_DIR") or "data").strip()
    work = env.get("HOOP_WORK_DIR") or None
    if not is_url(data):
        return {"data_dir": Path(data), "data_url": None}
    url = data.rstrip("/")
    if work is None:
        # One working directory per store, so that two stores never share local state.
        digest = hashlib.sha256(redact(url).encode()).hexdigest()[:12]
        work = str(Path(tempfile.gettempdir()) / f"hoop-sessions-{digest}")
    return {"data_dir": Path(work), "data_url": url}


def _parse_date(name: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{name} must be a date YYYY-MM-DD, not {value!r}") from None


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, allow_zero: bool = False) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not (value >= 0 if allow_zero else value > 0):
        raise ConfigError(
            f"{name} must be {'zero or more' if allow_zero else 'positive'}, not {raw!r}"
        )
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or choices[0]).strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    return (env.get(name) or "").strip().lower() in ("1", "true", "yes", "on")
