"""The object store behind ``HOOP_DATA_DIR=s3://bucket/prefix`` (or ``gs://``, ``az://``, ``file://``).

One seam over ``pyarrow.fs``: keys are ``/``-separated paths under the URL's prefix, and every
operation is retried on the errors a network gives (5xx answers, dropped connections) before it
raises ``StoreError``. Credentials and endpoint come from each store's standard variables, read by
the store's own SDK inside Arrow (for S3: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``, ``AWS_ENDPOINT_URL`` for MinIO, Ceph and other S3-compatible stores); nothing here
reads or prints them.

An object store replaces one object atomically but has no rename. ``put_file(..., atomic=True)``
uploads aside and copies on the server, so a fixed key (``warehouse.duckdb``) is the old object or
the new one; content-addressed keys are written directly, and their size is checked after the upload
so that an interrupted upload is never taken for the file.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from hoop_sessions.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from pyarrow import fs as pafs

log = logging.getLogger(__name__)

T = TypeVar("T")

# The schemes served by the same code (pyarrow.fs's S3, GCS, Azure and local filesystems).
SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "abfss", "file")
ATTEMPTS = 6
CHUNK = 8 * 1024 * 1024
INCOMING = "_incoming"  # aside uploads; the leading underscore hides them from Hive-style readers


def is_url(value: str) -> bool:
    """Whether HOOP_DATA_DIR names an object store rather than a local folder."""
    return "://" in value


def redact(url: str) -> str:
    """The URL without any user or password part (``s3://key:secret@bucket`` is accepted by Arrow)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    return urlunsplit((parts.scheme, host + (f":{parts.port}" if parts.port else ""), parts.path, "", ""))


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime_ns: int


def _transient(exc: BaseException) -> bool:
    # A missing object is an answer, not a fault; everything else pyarrow raises from the network is
    # an OSError (with the SDK's message) and worth another try.
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)


def _retrying(what: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(what)
    def call(self: ObjectStore, *args: object, **kwargs: object) -> T:
        attempt = retry(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.2, max=5.0),
            reraise=True,
        )(what)
        try:
            return attempt(self, *args, **kwargs)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StoreError(
                f"{what.__name__} on {self.url} failed {self.attempts} times: {exc}. Check the store's "
                "endpoint and credentials (AWS_ENDPOINT_URL, AWS_REGION, ...) and that the bucket exists"
            ) from None

    return call


class ObjectStore:
    """A prefix of an object store. Safe to share between threads (Arrow's filesystems are)."""

    def __init__(self, url: str, *, attempts: int = ATTEMPTS) -> None:
        if "pyarrow" not in sys.modules:
            # The process that reads hoop imports Arrow only for the store: the system allocator
            # (trimmed after each transfer) returns buffers that mimalloc would keep.
            os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
        from pyarrow import fs as pafs

        scheme = urlsplit(url).scheme.lower()
        if scheme not in SCHEMES:
            raise ConfigError(
                f"HOOP_DATA_DIR {redact(url)!r}: the scheme {scheme!r} is not one of "
                f"{', '.join(s + '://' for s in SCHEMES)}; give a local path or one of those URLs"
            )
        self.url = redact(url).rstrip("/")
        self.attempts = attempts
        try:
            if scheme == "az":
                filesystem, root = _azure(url)
            elif scheme == "s3" and urlsplit(url).username is None:
                filesystem, root = _s3(url)
            else:
                filesystem, root = pafs.FileSystem.from_uri(url)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"HOOP_DATA_DIR {self.url!r} cannot be opened: {exc}") from None
        self.fs: pafs.FileSystem = filesystem
        self.root = root.rstrip("/")
        # A local (file://) store has folders to make; an object store has none (and an empty
        # "folder" object there would only be clutter).
        self._folders = isinstance(filesystem, pafs.LocalFileSystem)

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def key(self, path: str) -> str:
        return path[len(self.root) + 1 :]

    def _writable(self, key: str) -> str:
        path = self.path(key)
        if self._folders:
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        return path

    @_retrying
    def put_file(self, local: Path, key: str, *, atomic: bool = False) -> None:
        """Upload ``local`` as ``key``; ``atomic``: a reader sees the old object or the new one."""
        size = local.stat().st_size
        # Aside beside the object it replaces, under a fixed name: a killed upload's leftover is
        # overwritten by the next one. (Deleting it makes Arrow write an empty "folder" marker,
        # a key ending in '/', which every engine and ``list`` pass over.)
        folder, _, name = key.rpartition("/")
        target = f"{folder}/{INCOMING}-{name}" if folder else f"{INCOMING}-{name}"
        target = target if atomic else key
        # Copied by Arrow itself, file to object in 1 MiB pieces on this thread: no Python buffer
        # per chunk (glibc kept those, some 100 MiB over a run's uploads).
        from pyarrow import fs as pafs

        pafs.copy_files(
            str(local), self._writable(target), destination_filesystem=self.fs,
            chunk_size=1 << 20, use_threads=False,
        )
        uploaded = self.fs.get_file_info(self.path(target)).size
        if uploaded != size:
            raise OSError(f"{target}: {uploaded} bytes arrived of {size}")
        if atomic:
            try:
                self.fs.copy_file(self.path(target), self._writable(key))
            finally:
                self.fs.delete_file(self.path(target))

    @_retrying
    def put_bytes(self, key: str, data: bytes) -> None:
        with self.fs.open_output_stream(self._writable(key), compression=None) as out:
            out.write(data)

    @_retrying
    def get_bytes(self, key: str) -> bytes | None:
        try:
            # A random-access file knows its size: one read asks for it whole, not 256 KiB at a time.
            with self.fs.open_input_file(self.path(key)) as source:
                data: bytes = source.read()
                return data
        except FileNotFoundError:
            return None

    @_retrying
    def get_file(self, key: str, local: Path) -> bool:
        """Download ``key`` to ``local`` (written aside, renamed into place); False when absent."""
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")
        try:
            with self.fs.open_input_stream(self.path(key), compression=None) as source, open(tmp, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
        except FileNotFoundError:
            tmp.unlink(missing_ok=True)
            return False
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, local)
        return True

    @_retrying
    def info(self, key: str) -> ObjectInfo | None:
        from pyarrow import fs as pafs

        found = self.fs.get_file_info(self.path(key))
        if found.type != pafs.FileType.File:
            return None
        return ObjectInfo(key, found.size or 0, found.mtime_ns or 0)

    @_retrying
    def list(self, prefix: str) -> dict[str, ObjectInfo]:
        """Every object under ``prefix`` (recursively), by key."""
        from pyarrow import fs as pafs

        selector = pafs.FileSelector(self.path(prefix.rstrip("/")), recursive=True, allow_not_found=True)
        found = {}
        for item in self.fs.get_file_info(selector):
            if item.type == pafs.FileType.File:
                key = self.key(item.path)
                found[key] = ObjectInfo(key, item.size or 0, item.mtime_ns or 0)
        return found

    @_retrying
    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            try:
                self.fs.delete_file(self.path(key))
            except FileNotFoundError:
                continue


# Arrow's S3 client retries on its own (its default: about 30 tries in some 6 s on a refused or cut
# connection), and each operation here is retried again; three tries there keep a store that is
# down from taking minutes to say so.
S3_ATTEMPTS = 3


def _s3(url: str) -> tuple[pafs.FileSystem, str]:
    """``s3://bucket/prefix`` with the standard variables: AWS_ENDPOINT_URL(_S3) for an
    S3-compatible store, AWS_REGION (else the bucket's region, asked of AWS), credentials from the
    SDK's usual chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, an instance role)."""
    from pyarrow import fs as pafs

    parts = urlsplit(url)
    options: dict[str, object] = {
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS),
        # Each 10 MiB part is sent before the next is read. With background writes Arrow read a
        # whole file ahead of the network (31 MiB held for a 30 MiB upload, 11 MiB without).
        "background_writes": False,
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        where = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options["endpoint_override"] = where.netloc
        options["scheme"] = where.scheme
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region is None and not endpoint:
        region = pafs.resolve_s3_region(parts.netloc)
    options["region"] = region or "us-east-1"
    return pafs.S3FileSystem(**options), f"{parts.netloc}{parts.path}"


def _azure(url: str) -> tuple[pafs.FileSystem, str]:
    """``az://container/prefix`` (adlfs's spelling, which Arrow's URI parser lacks) with the
    account from AZURE_STORAGE_ACCOUNT_NAME and, when set, its key from AZURE_STORAGE_ACCOUNT_KEY;
    without a key Arrow uses Azure's default credential chain."""
    from pyarrow import fs as pafs

    account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
    if not account:
        raise ValueError(
            "az:// needs AZURE_STORAGE_ACCOUNT_NAME (or give "
            "abfs://container@account.dfs.core.windows.net/prefix)"
        )
    parts = urlsplit(url)
    key = os.environ.get("AZURE_STORAGE_ACCOUNT_KEY") or None
    return pafs.AzureFileSystem(account_name=account, account_key=key), f"{parts.netloc}{parts.path}"


@functools.lru_cache(maxsize=8)
def open_store(url: str) -> ObjectStore:
    """One store object per URL and process (Arrow keeps its connections in it)."""
    return ObjectStore(url)
