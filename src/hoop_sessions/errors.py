"""The exception tree. Every error says what failed, where, and what to do about it."""

from __future__ import annotations


class HoopSessionsError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(HoopSessionsError):
    """A setting is missing or invalid. Never retried: the same request would fail the same way."""


class TlsSetupError(ConfigError):
    """TLS could not be set up with the gateway: ``https://`` to a plain-HTTP port, or a
    certificate this machine does not trust. Not retried."""


class ApiError(HoopSessionsError):
    """hoop answered with an error that retrying will not fix."""

    hint = ""

    def __init__(self, status: int, path: str, message: str, *, hint: str | None = None) -> None:
        self.status = status
        self.path = path
        self.message = message
        hint = self.hint if hint is None else hint
        text = f"hoop answered {status} for GET {path}: {message!r}"
        if hint:
            text += f". {hint}"
        super().__init__(text)


class AuthenticationError(ApiError):
    hint = "Check HOOP_API_TOKEN (and HOOP_API_AUTH_HEADER for legacy Api-Key gateways)"


class ForbiddenError(ApiError):
    hint = "The token may not read this session; use a token whose user is in the admin or auditor group"


class NotFoundError(ApiError):
    """404: for a session, it no longer exists; for the userinfo route, HOOP_API_URL is wrong (the
    client says which, since only it knows the URL)."""


class InvalidRequestError(ApiError):
    hint = "The gateway refused the request options; this is a bug in hoop-sessions or an unsupported gateway version"


class TransientApiError(HoopSessionsError):
    """A failure worth retrying: 429, 5xx, a dropped connection, a truncated or unreadable body.

    ``kind`` names the failure for the retry policy (client.RETRY_POLICY): how many attempts it
    gets and how long to wait between them.
    """

    def __init__(
        self, path: str, reason: str, retry_after: float | None = None, *, kind: str = "transient"
    ) -> None:
        self.path = path
        self.reason = reason
        self.retry_after = retry_after
        self.kind = kind
        super().__init__(f"GET {path}: {reason}")


class RetriesExhaustedError(HoopSessionsError):
    """A transient failure kept happening past the retry budget."""


class UnreachableError(RetriesExhaustedError):
    """The gateway could not be reached at all: the connection was refused, or its host name does
    not resolve. Retried a few times only, then reported with the URL and what to check."""


class UnreadableBodyError(RetriesExhaustedError):
    """hoop kept answering 200 with a body that is not JSON."""


class PartialVisibilityError(HoopSessionsError):
    """The token cannot see every session of the organization."""


class PagingError(HoopSessionsError):
    """A list window could not be read completely."""


class RawDataError(HoopSessionsError):
    """A raw day file is missing or damaged."""


class WarehouseLockedError(HoopSessionsError):
    """Another process held the DuckDB file for longer than the lock timeout."""


class LoadMemoryError(HoopSessionsError):
    """A day's load did not fit in DuckDB's memory even under the highest limit tried (half of
    the machine's); it was rolled back, so the day keeps what it held."""


class DayFailedError(HoopSessionsError):
    """A day could not be synced; its previous content is untouched."""

    def __init__(self, day: object, cause: BaseException) -> None:
        self.day = day
        self.cause = cause
        super().__init__(f"day {day} failed, its previous content is kept: {cause}")


class StorageError(HoopSessionsError):
    """A file of the data directory could not be written: disk full, no permission, read-only."""

    def __init__(self, path: object, cause: OSError) -> None:
        self.path = path
        self.cause = cause
        reason = cause.strerror or str(cause)
        super().__init__(f"cannot write {path}: {reason}")


class StoreError(HoopSessionsError):
    """The object store behind HOOP_DATA_DIR failed an operation after its retries. What was
    published before is kept; the day being published is published again by the next run."""


class WriterLockTimeoutError(HoopSessionsError):
    """Another run kept writing the data directory for longer than the writer lock timeout."""
