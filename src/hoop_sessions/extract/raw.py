"""Raw responses of one day, kept as received so the lake can be rebuilt without calling hoop.

One file per day, ``raw/start_day=YYYY-MM-DD/sessions.ndjson.gz``. Its first line is the extract
record (windows, counts, rejects, principal, the id of every body) under the key
``hoop_sessions_extract``; every further line is the body of one ``GET /api/sessions/{id}``
response, as received. Bodies are compressed to a side file while they arrive; the final file is a
gzip member holding the record followed by the side file's gzip member (concatenated members are
one valid gzip stream), written aside and renamed into place: a day's raw file is always either
the old one or the new one, complete.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, NotRequired, TypedDict

import orjson

from hoop_sessions.errors import RawDataError, StorageError
from hoop_sessions.extract.principal import Principal
from hoop_sessions.tempfiles import aside, rename_into_place

# The key of the extract record on a raw file's first line (files already written use it).
HEADER_KEY = "hoop_sessions_extract"
RAW_FILE = "sessions.ndjson.gz"


class RawWindow(TypedDict):
    """One listing window of the day as the extract record keeps it (``WindowResult.to_json``)."""

    window_start: str
    window_end: str
    pages: int
    requests: int
    retries: int
    started_at: str
    finished_at: str
    session_ids: list[str]


class RawHeader(TypedDict):
    """The extract record at the head of a raw file: what the reading process tells the builder.

    Written by ``extract.day.extract_day`` and ``sync.ingest.ingest_records``; the keys only the extractor
    writes are not required. A record read back from disk is not checked against this shape
    (older files may lack keys), so its readers still use ``get`` and check what they find.
    """

    format: int
    start_day: str
    api_url: str
    principal: Principal
    started_at: str
    finished_at: str
    # The session id of every body, in file order.
    order: list[str]
    windows: list[RawWindow]
    rejects: list[dict[str, Any]]
    store_output: NotRequired[str]
    # Per session id: the digest of its list row, and of its body as stored.
    fingerprints: NotRequired[dict[str, str]]
    digests: NotRequired[dict[str, str]]
    # Parts of the day no list filter could reach: {window_start, window_end, reason, ...}.
    gaps: NotRequired[list[dict[str, Any]]]


def day_dir(raw_dir: Path, day: date) -> Path:
    return raw_dir / f"start_day={day.isoformat()}"


def raw_path(raw_dir: Path, day: date) -> Path:
    return day_dir(raw_dir, day) / RAW_FILE


def raw_days(raw_dir: Path) -> list[date]:
    """Days that have a raw file, oldest first."""
    days = []
    for path in sorted(raw_dir.glob(f"start_day=*/{RAW_FILE}")):
        with contextlib.suppress(ValueError):
            days.append(date.fromisoformat(path.parent.name.removeprefix("start_day=")))
    return days


def content_end(body: bytes | memoryview) -> int:
    """Where ``body`` ends without the trailing newline hoop sends. Bodies can be 150 MB: slice
    a ``memoryview`` to this length rather than copy the body with ``rstrip``."""
    end = len(body)
    while end and body[end - 1] in b"\r\n":
        end -= 1
    return end


def read_header(raw_dir: Path, day: date) -> RawHeader | None:
    """The extract record of a day's raw file, or None when there is no readable one."""
    try:
        raw = RawDay(raw_dir, day)
    except RawDataError:
        return None
    raw.close()
    return raw.header


def header_stamp(header: RawHeader) -> str | None:
    """When the read recorded in a header finished: the latest window's end (as the ledger has it)."""
    ends: list[str] = [
        w["finished_at"]
        for w in header.get("windows") or []
        if isinstance(w, dict) and isinstance(w.get("finished_at"), str)
    ]
    return max(ends) if ends else None


class RawDayWriter:
    """Writes a day's bodies to a temporary file; ``commit`` renames it into place.

    An I/O error (disk full, no permission, a read-only file system) raises ``StorageError``
    naming the file and the cause, and removes this writer's temporary files at once: on a full
    disk they are what keeps it full, and no later run may remove them for an hour.
    """

    def __init__(self, raw_dir: Path, day: date, *, compresslevel: int = 1) -> None:
        self.path = raw_path(raw_dir, day)
        self._file: gzip.GzipFile | None = None
        self._raw: BinaryIO | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = aside(self.path)
            self._bodies = self._tmp.with_suffix(".bodies")
            self._raw = self._open(self._bodies)
            self._file = gzip.GzipFile(
                filename=str(self._bodies),
                mode="wb",
                compresslevel=compresslevel,
                fileobj=self._raw,
            )
        except OSError as exc:
            raise self._failed(exc) from exc
        self.count = 0
        self._done = False

    @staticmethod
    def _open(path: Path) -> BinaryIO:
        """The file a write goes to (a seam for tests that fill the disk)."""
        return open(path, "wb")

    def write(self, body: bytes) -> None:
        assert self._file is not None
        end = content_end(body)
        if body.find(b"\n", 0, end) != -1:
            # Pretty-printed JSON would break the one-body-a-line format: store it compacted.
            # Invalid JSON cannot be compacted: its line breaks become spaces (it is rejected later).
            try:
                body = orjson.dumps(orjson.loads(body))
            except orjson.JSONDecodeError:
                body = bytes(body[:end]).replace(b"\r", b" ").replace(b"\n", b" ")
            end = len(body)
        try:
            self._file.write(memoryview(body)[:end])
            self._file.write(b"\n")
        except OSError as exc:
            raise self._failed(exc) from exc
        self.count += 1

    def commit(self, header: RawHeader) -> Path:
        try:
            self._close_bodies()
            with self._open(self._tmp) as out:
                out.write(gzip.compress(orjson.dumps({HEADER_KEY: header}, default=str) + b"\n", 1))
                with open(self._bodies, "rb") as bodies:
                    shutil.copyfileobj(bodies, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            rename_into_place(self._tmp, self.path)
        except OSError as exc:
            raise self._failed(exc) from exc
        self._done = True
        self._bodies.unlink(missing_ok=True)
        return self.path

    def discard(self) -> None:
        self._done = True
        self._remove_temporary()

    def _close_bodies(self) -> None:
        file, self._file = self._file, None
        raw, self._raw = self._raw, None
        try:
            if file is not None:
                file.close()
        finally:
            # GzipFile leaves a file object it was given open: close it here.
            if raw is not None:
                raw.close()

    def _remove_temporary(self) -> None:
        with contextlib.suppress(OSError):  # the disk is full: closing flushes and fails again
            self._close_bodies()
        for path in (getattr(self, "_tmp", None), getattr(self, "_bodies", None)):
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)

    def _failed(self, exc: OSError) -> StorageError:
        self._done = True
        self._remove_temporary()
        return StorageError(exc.filename or self.path, exc)

    def __enter__(self) -> RawDayWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._done:
            self.discard()


class RawDay:
    """Reads a day's raw file: ``header`` is the extract record, ``bodies()`` every response body."""

    def __init__(self, raw_dir: Path, day: date) -> None:
        self.day = day
        self.path = raw_path(raw_dir, day)
        if not self.path.exists():
            raise RawDataError(
                f"no raw data for {day} at {self.path}: sync the day first (hoop-sessions backfill)"
            )
        self._fh = gzip.open(self.path, "rb")
        try:
            first = self._fh.readline()
            doc = orjson.loads(first) if first else None
        except (OSError, EOFError, orjson.JSONDecodeError) as exc:
            self._fh.close()
            raise RawDataError(
                f"raw file {self.path} is damaged ({exc}): sync {day} again"
            ) from None
        if not isinstance(doc, dict) or not isinstance(doc.get(HEADER_KEY), dict):
            self._fh.close()
            raise RawDataError(f"raw file {self.path} has no extract record: sync {day} again")
        self.header: RawHeader = doc[HEADER_KEY]

    def close(self) -> None:
        self._fh.close()

    def bodies(self) -> Iterator[bytes]:
        try:
            with self._fh as fh:
                yield from fh
        except (OSError, EOFError) as exc:
            raise RawDataError(
                f"raw file {self.path} is damaged ({exc}): sync {self.day} again"
            ) from None
