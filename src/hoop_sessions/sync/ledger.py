"""The sync ledger: what has been read from hoop, what is loaded, and what is left to read.

What a run reads next is decided from this ledger (``hoop_sessions.sync.plan``), never from what the
warehouse happens to hold. It is kept with the data, one small JSON file per day under
``<data dir>/ledger/``, each replaced atomically (written aside, fsynced, renamed), so a crash
leaves the previous entry or the new one:

- per day: when it was last listed completely, on the gateway's clock (``listed_at``); the stamp
  of the raw file read and of the one loaded into the warehouse; the gaps a listing could not
  read; the error of a run that could not read the day at all, with its consecutive failures;
- per session: when it was last read, from when its record is final (``final_from``, set by the
  build, see ``finality.final_from``), its consecutive failures and last error, and whether the
  body kept is stale (a later read failed: the session keeps its previous body and rows) or the
  gateway answered 404 for it ("gone since").

This module reads and writes JSON only: the process that reads hoop uses it without Arrow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from hoop_sessions.errors import RawDataError
from hoop_sessions.extract.windows import day_bounds
from hoop_sessions.tempfiles import write_atomic

FORMAT = 1


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    return _parsed(text)


@lru_cache(maxsize=1 << 16)
def _parsed(text: str) -> datetime | None:
    # Cached: a day's sessions share a few read times, and finality compares them often.
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


@dataclass
class SessionEntry:
    read_at: str | None = None
    # From when the record as last built is final; None: it is not final as it is.
    final_from: str | None = None
    failures: int = 0
    last_error: str | None = None
    failing_since: str | None = None
    # A read failed after an earlier one succeeded: the previous body and rows are kept.
    stale_since: str | None = None
    # The gateway answered 404 for a session it had listed and served before.
    gone_since: str | None = None

    def is_final(self) -> bool:
        """Final when it was read at or after the moment its record became final."""
        since, read = _time(self.final_from), _time(self.read_at)
        return since is not None and read is not None and since <= read and self.failures == 0

    @property
    def failing(self) -> bool:
        return self.failures > 0


@dataclass
class DayEntry:
    day: date
    # When the day was last listed completely, on the gateway's clock (None: never).
    listed_at: str | None = None
    read_at: str | None = None
    # Stamp (the raw file's finished_at) of the last raw file written, and of the one loaded.
    read_stamp: str | None = None
    loaded_stamp: str | None = None
    gaps: list[dict[str, Any]] = field(default_factory=list)
    # The last run that could not read the day at all: {"error", "failures", "since", "last_at"}.
    error: dict[str, Any] | None = None
    sessions: dict[str, SessionEntry] = field(default_factory=dict)

    def settled(self, settle: timedelta) -> bool:
        """Listed completely at least ``settle`` after the day's end on the gateway's clock."""
        listed = _time(self.listed_at)
        return listed is not None and listed >= day_bounds(self.day)[1] + settle and not self.gaps

    @property
    def loaded(self) -> bool:
        return self.loaded_stamp is not None and self.loaded_stamp == self.read_stamp

    def open_sessions(self) -> list[str]:
        return sorted(sid for sid, s in self.sessions.items() if not s.is_final())

    def failing_sessions(self) -> dict[str, SessionEntry]:
        return {sid: s for sid, s in sorted(self.sessions.items()) if s.failing}

    def final_ids(self) -> frozenset[str]:
        return frozenset(sid for sid, s in self.sessions.items() if s.is_final())

    def due_final(self, now: datetime) -> bool:
        """A session not final when read has become final by the clock since (its access
        ended long enough ago): the day must be rebuilt so that its rows say so."""
        for entry in self.sessions.values():
            since = _time(entry.final_from)
            if since is not None and not entry.is_final() and since <= now and not entry.failing:
                return True
        return False

    def to_json(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies every value, which took seconds over a month of
        # days.
        return {
            "format": FORMAT,
            "day": self.day.isoformat(),
            "listed_at": self.listed_at,
            "read_at": self.read_at,
            "read_stamp": self.read_stamp,
            "loaded_stamp": self.loaded_stamp,
            "gaps": self.gaps,
            "error": self.error,
            "sessions": {sid: _compact(vars(s)) for sid, s in sorted(self.sessions.items())},
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DayEntry:
        sessions = {
            str(sid): _session(value)
            for sid, value in (doc.get("sessions") or {}).items()
            if isinstance(value, dict)
        }
        return cls(
            day=date.fromisoformat(doc["day"]),
            listed_at=doc.get("listed_at"),
            read_at=doc.get("read_at"),
            read_stamp=doc.get("read_stamp"),
            loaded_stamp=doc.get("loaded_stamp"),
            gaps=list(doc.get("gaps") or []),
            error=doc.get("error"),
            sessions=sessions,
        )


_SESSION_FIELDS = frozenset(SessionEntry.__dataclass_fields__)


def _session(value: dict[str, Any]) -> SessionEntry:
    try:
        return SessionEntry(**value)
    except TypeError:  # a key this version does not know (a newer ledger): keep the known ones
        return SessionEntry(**{k: v for k, v in value.items() if k in _SESSION_FIELDS})


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, 0)}


# Entries parsed in this process, by file and the file's (inode, mtime, size) when read: a run
# consults each day's entry several times (plan, previous raw files, read, report, warehouse
# copy), and a file is replaced by rename, never edited in place. Whoever changes an entry it
# got here writes it back with ``put`` (the record_* functions below do).
_PARSED: dict[Path, tuple[tuple[int, int, int], DayEntry]] = {}


class Ledger:
    """The ledger files of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "ledger"

    def path(self, day: date) -> Path:
        return self.root / f"start_day={day.isoformat()}.json"

    def get(self, day: date) -> DayEntry | None:
        path = self.path(day)
        try:
            stat = path.stat()
            version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            cached = _PARSED.get(path)
            if cached is not None and cached[0] == version:
                return cached[1]
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            entry = DayEntry.from_json(orjson.loads(data))
            _PARSED[path] = (version, entry)
            return entry
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RawDataError(
                f"the sync ledger entry {self.path(day)} cannot be read ({exc}); remove it to have "
                "the day read again from hoop"
            ) from None

    def entry(self, day: date) -> DayEntry:
        return self.get(day) or DayEntry(day)

    def days(self) -> list[date]:
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.glob("start_day=*.json"):
            with contextlib.suppress(ValueError):
                found.append(date.fromisoformat(path.stem.removeprefix("start_day=")))
        return sorted(found)

    def entries(self, days: Iterable[date] | None = None) -> Iterator[DayEntry]:
        for day in self.days() if days is None else days:
            entry = self.get(day)
            if entry is not None:
                yield entry

    def put(self, entry: DayEntry) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(entry.day)
        _PARSED.pop(path, None)
        write_atomic(path, orjson.dumps(entry.to_json(), option=orjson.OPT_INDENT_2))
        stat = path.stat()
        _PARSED[path] = ((stat.st_ino, stat.st_mtime_ns, stat.st_size), entry)

    # The first day of the daily partitions, recorded by the first run when HOOP_SYNC_START_DATE
    # is not set, so that it never slides forward with the calendar.
    def first_day(self) -> date | None:
        try:
            doc = orjson.loads((self.root / "first_day.json").read_bytes())
            return date.fromisoformat(doc["first_day"])
        except (FileNotFoundError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    def record_first_day(self, day: date) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / "first_day.json", orjson.dumps({"first_day": day.isoformat()}))


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _stamp_text(value: Any) -> str | None:
    moment = _time(value.replace("Z", "+00:00")) if isinstance(value, str) else None
    return _iso(moment)


def same_stamp(a: str | None, b: str | None) -> bool:
    """Two raw-file stamps name the same read (written as ISO times, with Z or +00:00)."""
    normal = _stamp_text(a)
    return normal is not None and normal == _stamp_text(b)


def record_read(
    ledger: Ledger,
    day: date,
    *,
    gateway_now: datetime,
    stamp: str | None,
    listed: bool,
    read_ids: Iterable[str],
    listed_ids: Iterable[str],
    failures: dict[str, str],
    stale: Iterable[str],
    gone: Iterable[str],
    gaps: list[dict[str, Any]],
) -> DayEntry:
    """A day was read: update its listing, the sessions read, and the ones that failed."""
    entry = ledger.entry(day)
    now = _iso(gateway_now)
    if listed:
        entry.listed_at = now if not gaps else entry.listed_at
        entry.gaps = list(gaps)
        # Sessions the listing no longer names are dropped from the ledger only when the listing
        # was complete; their rows stay in the warehouse with their last body (see extract).
        names = set(listed_ids)
        for sid in list(entry.sessions):
            if sid not in names and not gaps and not entry.sessions[sid].stale_since:
                del entry.sessions[sid]
        for sid in names:
            entry.sessions.setdefault(sid, SessionEntry())
    entry.read_at = now
    entry.read_stamp = _stamp_text(stamp) or entry.read_stamp
    entry.error = None
    stale, gone = set(stale), set(gone)
    # Sessions are stamped on the local clock, as the build stamps ``synced_at`` (the time
    # their finality is judged at); the listing on the gateway's.
    read = now_iso()
    for sid in read_ids:
        session = entry.sessions.setdefault(sid, SessionEntry())
        session.read_at = read
        session.failures = 0
        session.last_error = session.failing_since = session.stale_since = session.gone_since = None
    for sid, why in failures.items():
        session = entry.sessions.setdefault(sid, SessionEntry())
        session.failures += 1
        session.last_error = why
        session.failing_since = session.failing_since or read
        if sid in stale:
            session.stale_since = session.stale_since or read
        if sid in gone:
            session.gone_since = session.gone_since or read
    ledger.put(entry)
    return entry


def record_built(ledger: Ledger, day: date, final_from: dict[str, str | None]) -> None:
    """The build of a day says from when each loaded session's record is final."""
    entry = ledger.entry(day)
    for sid, since in final_from.items():
        entry.sessions.setdefault(sid, SessionEntry()).final_from = since
    ledger.put(entry)


def record_loaded(ledger: Ledger, day: date, stamp: str | None) -> None:
    entry = ledger.entry(day)
    entry.loaded_stamp = _stamp_text(stamp)
    ledger.put(entry)


def record_failed(ledger: Ledger, day: date, error: str, *, at: datetime) -> None:
    """A run could not read the day at all: its previous entry (and content) stay as they were."""
    entry = ledger.entry(day)
    previous = entry.error or {}
    entry.error = {
        "error": error,
        "failures": int(previous.get("failures") or 0) + 1,
        "since": previous.get("since") or _iso(at),
        "last_at": _iso(at),
    }
    ledger.put(entry)


def table_rows(
    ledger: Ledger, *, settle: timedelta
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of the warehouse's ``sync_ledger`` (one per day) and ``sync_ledger_sessions``
    (one per session still open or failing), as ``warehouse.load.replace_ledger`` takes them."""
    days: list[dict[str, Any]] = []
    sessions: list[dict[str, Any]] = []
    for entry in ledger.entries():
        failing = entry.failing_sessions()
        still_open = entry.open_sessions()
        error = entry.error or {}
        days.append(
            {
                "start_day": entry.day.isoformat(),
                "listed_at": entry.listed_at,
                "read_at": entry.read_at,
                "settled": entry.settled(settle),
                "loaded": entry.loaded,
                "sessions": len(entry.sessions),
                "sessions_open": len(still_open),
                "sessions_failing": len(failing),
                "gaps": len(entry.gaps),
                "error": error.get("error"),
                "error_failures": error.get("failures"),
                "error_since": error.get("since"),
            }
        )
        for sid in sorted(set(still_open) | set(failing)):
            s = entry.sessions[sid]
            sessions.append(
                {
                    "session_id": sid,
                    "start_day": entry.day.isoformat(),
                    "read_at": s.read_at,
                    "final_from": s.final_from,
                    "failures": s.failures,
                    "last_error": s.last_error,
                    "failing_since": s.failing_since,
                    "stale_since": s.stale_since,
                    "gone_since": s.gone_since,
                }
            )
    return days, sessions
