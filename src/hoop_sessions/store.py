"""The object store behind ``HOOP_DATA_DIR=s3://bucket/prefix`` (or ``gs://``, ``az://``, ``file://``).

One seam over ``obstore`` (the Python binding of the ``object_store`` crate of the Apache Arrow
project): keys are ``/``-separated paths under the URL's prefix, and every operation is retried on
the errors a network gives (5xx answers, dropped connections, timeouts) before it raises
``StoreError``. Credentials and endpoint come from each store's standard variables, read by the
client itself (for S3: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``, ``AWS_ENDPOINT_URL`` for MinIO, Ceph and other S3-compatible stores, a pod's web
identity or an instance's role); nothing here reads or prints them.

Why not ``pyarrow.fs``, which came first: the process that reads hoop publishes each day, and
Arrow's filesystem cost it several times the memory of this client (importing Arrow, the AWS
SDK, buffers its allocator kept; the figures are in docs/design.md).

An object store replaces one object atomically but has no rename. An upload here becomes the
object only when all of it has arrived (a multipart upload is completed last, and aborted on an
error; a process killed half-way completes nothing), so ``put_file`` to a fixed key
(``warehouse.duckdb``) leaves the old object or the new one. Its size is checked after the upload.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from hoop_sessions.errors import ConfigError, StoreError
from hoop_sessions.tempfiles import atomic_file

log = logging.getLogger(__name__)

T = TypeVar("T")

# The schemes served by the same code (obstore's S3, GCS, Azure and local stores).
SCHEMES = ("s3", "gs", "az", "abfs", "abfss", "file")
ATTEMPTS = 6
CHUNK = 8 * 1024 * 1024  # multipart part size, and the piece a download writes at a time
UPLOADS_AT_ONCE = 2  # parts of one upload in flight
# The client's own retries under ours: a few, so that a store that is down says so in seconds.
CLIENT_RETRIES = 3


def is_url(value: str) -> bool:
    """Whether HOOP_DATA_DIR names an object store rather than a local folder."""
    return "://" in value


def redact(url: str) -> str:
    """The URL without any user or password part (``s3://key:secret@bucket`` would carry them)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    return urlunsplit(
        (parts.scheme, host + (f":{parts.port}" if parts.port else ""), parts.path, "", "")
    )


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime_ns: int


def _not_found(exc: BaseException) -> bool:
    from obstore.exceptions import NotFoundError

    return isinstance(exc, (NotFoundError, FileNotFoundError))


def _transient(exc: BaseException) -> bool:
    # What a network gives: the client's generic errors (5xx after its own retries, connections
    # refused or cut, timeouts). A missing object is an answer; refused credentials, a bad path or
    # configuration, and this machine's own files, fail the same way again.
    from obstore.exceptions import GenericError, JoinError

    return isinstance(exc, (GenericError, JoinError))


_RAISE: Any = object()


def _retrying(missing: Any = _RAISE) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Our retries over an operation; a missing object returns ``missing`` when given (an answer,
    never retried), else raises FileNotFoundError; what is left raises StoreError."""

    def decorate(what: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(what)
        def call(self: ObjectStore, *args: object, **kwargs: object) -> T:
            from obstore.exceptions import BaseError

            attempt = retry(
                retry=retry_if_exception(_transient),
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.2, max=5.0),
                reraise=True,
            )(what)
            try:
                return attempt(self, *args, **kwargs)
            except (BaseError, FileNotFoundError) as exc:
                if _not_found(exc):
                    if missing is not _RAISE:
                        return cast(T, copy.copy(missing))  # a fresh {} for each caller
                    raise FileNotFoundError(str(exc)) from None
                tries = f"failed {self.attempts} times" if _transient(exc) else "failed"
                raise StoreError(
                    f"{what.__name__} on {self.url} {tries}: {_first_line(exc)}. Check the "
                    "store's endpoint and credentials (AWS_ENDPOINT_URL, AWS_REGION, ...) and "
                    "that the bucket exists"
                ) from None

        return call

    return decorate


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500]


class ObjectStore:
    """A prefix of an object store. Safe to share between threads."""

    def __init__(self, url: str, *, attempts: int = ATTEMPTS) -> None:
        from obstore.exceptions import BaseError
        from obstore.store import LocalStore, from_url

        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise ConfigError(
                f"HOOP_DATA_DIR {redact(url)!r}: the scheme {scheme!r} is not one of "
                f"{', '.join(s + '://' for s in SCHEMES)}; give a local path or one of those URLs"
            )
        self.url = redact(url).rstrip("/")
        self.attempts = attempts
        self.root = f"{parts.netloc}{parts.path}".rstrip("/")
        retry_config: Any = {
            "max_retries": CLIENT_RETRIES,
            "retry_timeout": timedelta(seconds=30),
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=2),
            },
        }
        try:
            if scheme == "file":
                Path(parts.path).mkdir(parents=True, exist_ok=True)
                self._store: Any = LocalStore(parts.path)
            else:
                options: dict[str, Any] = {"timeout": timedelta(minutes=5)}
                endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
                    "AWS_ENDPOINT_URL"
                )
                config: dict[str, Any] = {}
                if scheme == "s3" and endpoint:
                    config["endpoint"] = endpoint
                    # An S3-compatible store on plain http (a MinIO inside the cluster, a test's).
                    options["allow_http"] = endpoint.startswith("http://")
                make: Any = from_url  # its overloads are per scheme; the scheme is checked above
                self._store = make(
                    url, config=config or None, client_options=options, retry_config=retry_config
                )
        except (BaseError, ValueError, OSError) as exc:
            raise ConfigError(
                f"HOOP_DATA_DIR {self.url!r} cannot be opened: {_first_line(exc)}"
            ) from None

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    def path(self, key: str) -> str:
        """The object's full name, for messages and engines: bucket, prefix and key."""
        return f"{self.root}/{key}" if key else self.root

    @_retrying()
    def put_file(self, local: Path, key: str) -> None:
        """Upload ``local`` as ``key``: readers see the old object until the new one is whole."""
        import obstore

        size = local.stat().st_size
        obstore.put(self._store, key, local, chunk_size=CHUNK, max_concurrency=UPLOADS_AT_ONCE)
        uploaded = obstore.head(self._store, key)["size"]
        if uploaded != size:
            from obstore.exceptions import GenericError

            raise GenericError(f"{key}: {uploaded} bytes arrived of {size}")

    @_retrying()
    def put_bytes(self, key: str, data: bytes) -> None:
        import obstore

        obstore.put(self._store, key, data, use_multipart=False)

    @_retrying(missing=None)
    def get_bytes(self, key: str) -> bytes | None:
        import obstore

        return bytes(obstore.get(self._store, key).bytes())

    @_retrying()
    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of ``key``: what a reader of a file asks for."""
        import obstore

        if end <= start:
            return b""
        return bytes(obstore.get_range(self._store, key, start=start, end=end))

    @_retrying(missing=False)
    def get_file(self, key: str, local: Path) -> bool:
        """Download ``key`` to ``local`` (written aside, renamed into place); False when absent."""
        import obstore

        result = obstore.get(self._store, key)  # before the file aside: absent makes none
        local.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(local) as out:
            for chunk in result.stream(min_chunk_size=CHUNK):
                out.write(chunk)
        return True

    @_retrying(missing=None)
    def info(self, key: str) -> ObjectInfo | None:
        import obstore

        return _info(obstore.head(self._store, key))

    @_retrying(missing={})  # a local store's missing folder
    def list(self, prefix: str) -> dict[str, ObjectInfo]:
        """Every object under ``prefix`` (recursively, on ``/`` boundaries), by key."""
        import obstore

        found = {}
        for batch in obstore.list(self._store, prefix.rstrip("/") or None, chunk_size=1000):
            for meta in batch:
                info = _info(meta)
                found[info.key] = info
        return found

    @_retrying()
    def delete(self, keys: Iterable[str]) -> None:
        import obstore

        for key in keys:
            try:
                obstore.delete(self._store, key)
            except Exception as exc:
                if not _not_found(exc):
                    raise


def _info(meta: Any) -> ObjectInfo:
    modified = meta["last_modified"]
    return ObjectInfo(str(meta["path"]), int(meta["size"]), int(modified.timestamp() * 1e9))


@functools.lru_cache(maxsize=8)
def open_store(url: str) -> ObjectStore:
    """One store object per URL and process (the client keeps its connections in it)."""
    return ObjectStore(url)
