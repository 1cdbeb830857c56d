"""Extract one closed UTC day: list it (``listing``), get each session, keep the raw bodies.

Gets run concurrently with a bounded limit (``ordered``); their bodies are written to the day's
raw file in a fixed order (start_date, id), so a rerun of an unchanged day writes the same file.
A day read before reuses what it can: final sessions whose list row is unchanged are not read
again (``PreviousDay``), and a closed day past the rolling window is not listed again.
"""

from __future__ import annotations

import hashlib
import logging
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from hoop_sessions.errors import (
    AuthenticationError,
    ConfigError,
    ForbiddenError,
    HoopSessionsError,
    NotFoundError,
    RawDataError,
    RetriesExhaustedError,
    UnreadableBodyError,
)
from hoop_sessions.extract.client import HoopClient, RequestStats
from hoop_sessions.extract.listing import (
    WindowResult,
    list_day,
    listed_before,
    queued,
    reject_row,
)
from hoop_sessions.extract.ordered import ordered_map
from hoop_sessions.extract.principal import Principal
from hoop_sessions.extract.protect import protect_output, stricter
from hoop_sessions.extract.raw import (
    RawDay,
    RawDayWriter,
    RawHeader,
    content_end,
    header_stamp,
)
from hoop_sessions.progress import NullProgress, Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractResult:
    day: date
    path: Path
    sessions_listed: int
    sessions_fetched: int
    rejects: int
    requests: int
    retries: int
    windows: int
    reused: int = 0
    changed: bool = True
    # False when the day was not listed again: only its sessions not final were read, by id.
    listed_again: bool = True
    # The raw file's stamp (its finished_at), the ids listed, and those read (or confirmed
    # unchanged by their list row) in this run.
    stamp: str | None = None
    listed_ids: tuple[str, ...] = ()
    read_ids: tuple[str, ...] = ()
    # Sessions that could not be read, with the cause; of them, those read before whose previous
    # body was kept (stale), and those the gateway answered 404 for (gone).
    failures: dict[str, str] = field(default_factory=dict)
    stale: frozenset[str] = frozenset()
    gone: frozenset[str] = frozenset()
    # Parts of the day no list filter could reach (see _list_crowded_second).
    gaps: tuple[dict[str, Any], ...] = ()


def _failure_cause(exc: HoopSessionsError) -> str:
    """Why a listed session could not be read, for the ledger and ``rejects``."""
    if isinstance(exc, NotFoundError):
        return f"listed but not found when read (404 {exc.message!r}); deleted after listing?"
    if isinstance(exc, ForbiddenError):
        return f"listed but the token may not read it (403 {exc.message!r})"
    if isinstance(exc, UnreadableBodyError):
        return f"the gateway kept answering with a body that is not JSON: {exc}"
    return f"could not be read: {exc}"


@dataclass(frozen=True)
class PreviousDay:
    """What an earlier sync of the day left: its raw file and which of its sessions are final."""

    raw_dir: Path
    final_ids: frozenset[str]
    # True when the day's raw file is the one the warehouse holds: a run killed after replacing
    # the raw file and before loading it left a raw file that only looks "unchanged".
    raw_is_loaded: bool = True
    # False for a day older than the rolling window: its sessions that are not final are read
    # again by id, without listing the day (see listed_before).
    relist: bool = True
    # A session's record has become final by the clock since it was built: rebuild the day.
    rebuild: bool = False


class _PreviousBodies:
    """The bodies of the day's previous raw file, read forward in the same (start_date, id) order."""

    def __init__(self, previous: PreviousDay | None, day: date) -> None:
        self.fingerprints: dict[str, str] = {}
        self.digests: dict[str, str] = {}
        self.final_ids: frozenset[str] = frozenset()
        self.ids: set[str] = set()
        # None when there is no previous raw file (or it cannot be read).
        self.header: RawHeader | None = None
        self._pairs: Any = iter(())
        if previous is None:
            return
        try:
            raw = RawDay(previous.raw_dir, day)
        except RawDataError:
            return
        self.header = raw.header
        self.fingerprints = dict(raw.header.get("fingerprints") or {})
        self.digests = dict(raw.header.get("digests") or {})
        order = list(raw.header.get("order") or [])
        self.ids = set(order)
        self.final_ids = previous.final_ids
        self._pairs = zip(order, raw.bodies(), strict=False)

    def reusable(self, sid: str, row_fingerprint: str) -> bool:
        return sid in self.final_ids and self.fingerprints.get(sid) == row_fingerprint

    def body(self, sid: str) -> bytes | None:
        """The previous body of ``sid``, skipping the ones before it; None when it had none."""
        if sid not in self.ids:
            return None
        for old_sid, body in self._pairs:
            if old_sid == sid:
                return bytes(body).rstrip(b"\r\n")
        return None


REUSE = b""
# Reads failing one after another without a success between them: the gateway, not a session.
FAILURES_IN_A_ROW = 20
# A session read before whose read failed now: its previous body is written again.
STALE = b"\x00stale"
# Bodies held back while a re-read day still looks unchanged (see extract_day); past this much
# the day is written out as it goes, as when it has changed.
HELD_BYTES = 64 * 1024 * 1024


def body_digest(body: bytes) -> str:
    """The digest of a body as the raw file keeps it (without hoop's trailing newline)."""
    return hashlib.blake2b(memoryview(body)[: content_end(body)], digest_size=16).hexdigest()


def _same_content(body: bytes, previous: bytes | None) -> bool:
    """Whether ``body`` without hoop's trailing newline is ``previous``, compared in place."""
    return previous is not None and content_end(body) == len(previous) and body.startswith(previous)


class _Reads:
    """The gets of one day's sessions, each failure kept to its own session.

    A session read before keeps its previous body (``STALE``), a 404 marks it gone; one never
    read becomes a ``get`` reject; the ledger retries both on later runs. Only a token or settings
    error, or ``FAILURES_IN_A_ROW`` failures with no success between them, stop the day.
    """

    def __init__(
        self,
        client: HoopClient,
        owner: dict[str, WindowResult],
        old: _PreviousBodies,
        *,
        day: date,
        store_output: str,
        rejects: list[dict[str, Any]],
    ) -> None:
        self._client = client
        self._owner = owner
        self._old = old
        self._day = day
        self._store_output = store_output
        self._in_a_row = 0
        self.rejects = rejects
        self.failures: dict[str, str] = {}
        self.stale: set[str] = set()
        self.gone: set[str] = set()

    async def fetch(self, sid: str) -> tuple[str, bytes | None]:
        stats = self._owner[sid].stats
        try:
            body = await self._client.get_session(sid, stats)
            self._in_a_row = 0
            return sid, protect_output(body, self._store_output)
        except (AuthenticationError, ConfigError):
            raise  # the run cannot go on: the token or the settings are wrong
        except HoopSessionsError as exc:
            error = exc
        cause = _failure_cause(error)
        self.failures[sid] = cause
        self._in_a_row += 1
        if self._in_a_row >= FAILURES_IN_A_ROW and len(self.failures) >= FAILURES_IN_A_ROW:
            # Not one bad session but the gateway failing every read: give the day up (its
            # previous content stays) instead of retrying each of its sessions in turn.
            raise RetriesExhaustedError(
                f"{self._in_a_row} sessions in a row could not be read (last: {sid}: {cause})"
            )
        if sid in self._old.ids:
            # Read before: the session keeps its previous body and rows, marked stale in the
            # ledger; one bad answer never deletes audit evidence.
            self.stale.add(sid)
            if isinstance(error, NotFoundError):
                self.gone.add(sid)
            log.warning(
                "%s: session %s could not be read again, its previous copy is kept: %s",
                self._day,
                sid,
                cause,
            )
            return sid, STALE
        self.rejects.append(reject_row(sid, "get", cause, None))
        return sid, None


class _DayOutput:
    """The bodies of a day, in listing order, into its raw file; and whether the day changed.

    A re-read day that may turn out unchanged (the nightly case) is held, not written, while it
    looks unchanged: bodies are compared with the previous file's digests, and only once something
    differs are the bodies so far written, the reused ones copied from the previous file. An
    unchanged day then costs no decompression or compression at all. A previous file without
    digests (older versions) is compared body by body as it is written.
    """

    def __init__(
        self,
        writer: RawDayWriter,
        old: _PreviousBodies,
        *,
        day: date,
        store_output: str,
        reprotect: bool,
        changed: bool,
        hold: bool,
    ) -> None:
        self._writer = writer
        self._old = old
        self._day = day
        self._store_output = store_output
        self._reprotect = reprotect
        self._held: list[tuple[str, bytes | None]] | None = [] if hold else None
        self._held_bytes = 0
        self.changed = changed
        self.fetched: list[str] = []
        self.digests: dict[str, str] = {}
        self.reused = 0

    def take(self, sid: str, body: bytes | None) -> None:
        """A result of ``_Reads.fetch`` (or ``REUSE``): the body read, ``REUSE``, ``STALE``, or
        None for a session that could not be read and has no previous body."""
        if body is None:
            self.changed = True
        elif body is REUSE:
            self.reused += 1
        if self._held is not None:
            self._hold(sid, body)
        else:
            self._write_compared(sid, body)

    def _hold(self, sid: str, body: bytes | None) -> None:
        assert self._held is not None
        if body is REUSE or body is STALE:
            self._held.append((sid, None))
            self.digests[sid] = self._old.digests[sid]
            self.fetched.append(sid)
        elif body is not None:
            self.digests[sid] = body_digest(body)
            self.changed = self.changed or self.digests[sid] != self._old.digests.get(sid)
            self._held.append((sid, body))
            self._held_bytes += len(body)
            self.fetched.append(sid)
        if self.changed or self._held_bytes > HELD_BYTES:
            for held_sid, held_body in self._held:
                self._write(held_sid, held_body)
            self._held = None

    def _write(self, sid: str, body: bytes | None) -> None:
        """Write ``body``, or with None the previous file's body of ``sid``."""
        if body is None:
            body = self._old.body(sid)
            if body is None:
                raise RawDataError(
                    f"the previous raw file of {self._day} lost the body of {sid}: sync it again"
                )
            if self._reprotect:
                body = protect_output(body, self._store_output)
        self._writer.write(body)

    def _write_compared(self, sid: str, body: bytes | None) -> None:
        previous_body = self._old.body(sid)
        if body is REUSE or body is STALE:
            body = previous_body
        elif body is not None and not _same_content(body, previous_body):
            self.changed = True
        if body is None:
            self.changed = True
            return
        if self._reprotect and body is previous_body:
            body = protect_output(body, self._store_output)
        self._writer.write(body)
        reused_digest = self._old.digests.get(sid) if body is previous_body else None
        self.digests[sid] = reused_digest or body_digest(body)
        self.fetched.append(sid)


async def extract_day(
    client: HoopClient,
    *,
    raw_dir: Path,
    day: date,
    concurrency: int,
    principal: Principal,
    progress: Progress | None = None,
    previous: PreviousDay | None = None,
    store_output: str = "full",
) -> ExtractResult:
    """List and get every session of ``day`` and replace the day's raw file.

    With ``previous``, a session that was final when last read and whose list row is unchanged is
    not read again: its body is copied from the previous raw file. When nothing at all changed, the
    raw file is left as it was and ``changed`` is false, so the day need not be rebuilt.
    """
    progress = progress or NullProgress()
    started = datetime.now(UTC)
    old = _PreviousBodies(previous, day)
    before = (
        listed_before(old.header, day)
        if previous is not None and not previous.relist and previous.raw_is_loaded
        else None
    )
    if before is None:
        windows, listed = await list_day(client, day)
        order = sorted(listed.by_id, key=lambda sid: (listed.by_id[sid][0], sid))
    else:
        windows, listed, order = before
    progress.day_listed(day, len(order), listed=before is None)
    rejects = list(listed.rejects)
    reads = _Reads(
        client,
        {sid: listed.by_id[sid][1] for sid in order},
        old,
        day=day,
        store_output=store_output,
        rejects=rejects,
    )

    def reusable(sid: str) -> tuple[str, bytes | None] | None:
        return (sid, REUSE) if old.reusable(sid, listed.fingerprints[sid]) else None

    # Bodies copied forward from a raw file written under a mode that kept more output are
    # reduced again: a switch to a stricter HOOP_STORE_OUTPUT applies to every body written.
    reprotect = bool(
        old.header and stricter(store_output, str(old.header.get("store_output") or "full"))
    )
    changed = (
        set(order) != old.ids
        or bool(rejects)
        or reprotect
        or (previous is not None and (not previous.raw_is_loaded or previous.rebuild))
    )
    with RawDayWriter(raw_dir, day) as writer:
        output = _DayOutput(
            writer,
            old,
            day=day,
            store_output=store_output,
            reprotect=reprotect,
            changed=changed,
            hold=previous is not None and not changed and old.ids <= old.digests.keys(),
        )
        async with aclosing(
            ordered_map(order, reads.fetch, limit=queued(concurrency), ready=reusable)
        ) as results:
            async for sid, body in results:
                progress.session_fetched(day)
                output.take(sid, body)
        # Written unless nothing changed since the previous read of the day.
        changed = output.changed or bool(rejects) or previous is None
        fetched = output.fetched
        header: RawHeader = {
            "format": 1,
            "start_day": day.isoformat(),
            "store_output": store_output,
            "api_url": client.base_url,
            "principal": principal,
            "started_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "order": fetched,
            "fingerprints": {sid: listed.fingerprints[sid] for sid in fetched},
            "digests": output.digests,
            "windows": [w.to_json() for w in windows],
            "rejects": rejects,
            "gaps": listed.gaps,
        }
        if changed:
            path = writer.commit(header)
            stamp = header_stamp(header)
        else:
            writer.discard()
            path = writer.path
            stamp = header_stamp(old.header) if old.header else None
    total = RequestStats()
    for w in windows:
        total.add(w.stats)
    return ExtractResult(
        day=day,
        path=path,
        sessions_listed=sum(len(w.session_ids) for w in windows),
        sessions_fetched=len(fetched),
        rejects=len(rejects),
        requests=total.requests,
        retries=total.retries,
        windows=len(windows),
        reused=output.reused,
        changed=changed,
        listed_again=before is None,
        stamp=stamp,
        listed_ids=tuple(order),
        read_ids=tuple(sid for sid in fetched if sid not in reads.stale),
        failures=reads.failures,
        stale=frozenset(reads.stale),
        gone=frozenset(reads.gone),
        gaps=tuple(listed.gaps),
    )
