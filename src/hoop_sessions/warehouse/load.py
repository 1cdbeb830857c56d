"""The DuckDB warehouse: DDL from the contract, one transaction per day, analyst views, file lock.

DuckDB lets one process write a database file or several processes read it, not both. Loads write
a copy of their own that analysts never open (``hoop_sessions.warehouse.snapshot`` publishes it for them), so
only another writer can hold it: the loader then waits for the lock (up to a timeout) and says who
holds it, instead of failing at once, and holds the file only while it loads.

Each session row also carries a summary of the session's other rows (``session_summary()``: its
tags, its review, who approved it, the span of its events), which the load keeps in the same
transaction as the day's rows. The compliance rules read it instead of joining and scanning the
other tables for every session.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from hoop_sessions.errors import LoadMemoryError, WarehouseLockedError
from hoop_sessions.paths import sql_dir

if TYPE_CHECKING:
    from hoop_sessions.build import schema

# The contract's schema (and with it pyarrow) is imported by the functions that create or load
# tables, not here: the process that reads hoop only asks the warehouse what is loaded, and the
# build worker must choose Arrow's allocator before pyarrow is first imported.

log = logging.getLogger(__name__)

_LOCK_RE = re.compile(r"Conflicting lock is held in (?P<holder>.+?) \(PID (?P<pid>\d+)\)")


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


def lock_holder(exc: Exception) -> str:
    match = _LOCK_RE.search(str(exc))
    if not match:
        return "another process"
    return f"{match.group('holder')} (PID {match.group('pid')})"


@contextmanager
def connect(
    path: Path, *, read_only: bool = False, lock_timeout: float = 300.0, poll: float = 0.5
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse, waiting up to ``lock_timeout`` seconds for another process to let go."""
    created = not read_only and not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    deadline = time.monotonic() + lock_timeout
    announced = False
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            if created:
                path.chmod(0o600)  # session contents: readable by the owner only
            break
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_lock_error(exc):
                raise
            holder = lock_holder(exc)
            if time.monotonic() >= deadline:
                raise WarehouseLockedError(
                    f"{path} is locked by {holder}; waited {lock_timeout:.0f} s. Let that process "
                    "finish or close its connection, or raise HOOP_WAREHOUSE_LOCK_TIMEOUT"
                ) from None
            if not announced:
                log.warning("%s is locked by %s; waiting up to %.0f s", path, holder, lock_timeout)
                announced = True
            time.sleep(poll)
    try:
        yield con
    finally:
        con.close()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every contract table, the rules' macros and the analyst views, if missing."""
    from hoop_sessions.build import schema

    for table in (*schema.ALL_TABLES, *schema.LEDGER_TABLES):
        con.execute(schema.ddl(table))
        # A warehouse made by an earlier version gets the columns added since (nullable, at the end).
        have = _column_types(con, table.name)
        for field in table.schema:
            if field.name not in have:
                con.execute(
                    f'ALTER TABLE "{table.name}" ADD COLUMN "{field.name}" {schema.duckdb_type(field)}'
                )
    ensure_session_summary(con)
    # The rules' shared macros first (a view may use them); both are replaced on every load, so
    # a warehouse made by an earlier version gets them here.
    con.execute((sql_dir() / "schema" / "macros.sql").read_text())
    con.execute((sql_dir() / "schema" / "views.sql").read_text())


def _column_types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE table_name = ? AND schema_name = 'main'",
        [table],
    ).fetchall()
    return {str(name): str(type_) for name, type_ in rows}


def _struct_type(table: schema.Table, leave_out: tuple[str, ...]) -> str:
    from hoop_sessions.build import schema

    fields = (f for f in table.schema if f.name not in leave_out)
    return "STRUCT(" + ", ".join(f'"{f.name}" {schema.duckdb_type(f)}' for f in fields) + ")"


# The summary a session row carries of the session's other rows, kept by the load (not in the
# lake): name, DuckDB type, what it holds. Every rule that used to join or scan those tables per
# session reads these instead.
@cache
def session_summary() -> tuple[tuple[str, str, str], ...]:
    """The summary columns: name, DuckDB type, what each holds."""
    from hoop_sessions.build import schema

    return (
        (
            "connection_tag_map",
            "MAP(VARCHAR, VARCHAR)",
            "the session's connection_tags as tag_key -> tag_value; null when it has none",
        ),
        (
            "review",
            _struct_type(schema.REVIEWS, ("session_id", "start_day")),
            "the session's reviews row (every column but session_id and start_day); null without one",
        ),
        (
            "approved_by",
            "VARCHAR[]",
            "distinct emails of the reviewers whose review_groups row of the session's review is "
            "APPROVED, sorted; null when there is none",
        ),
        ("first_event_time", "TIMESTAMPTZ", "earliest event_time of its session_events"),
        ("last_event_time", "TIMESTAMPTZ", "latest event_time of its session_events"),
        (
            "timed_event_count",
            "BIGINT",
            "how many of its session_events rows have an event_time; null when none has",
        ),
    )


# Every row of a session carries the session's start_day, so the summary of the days in
# [$first_day, $last_day] is made from those days' rows alone.
@cache
def _fill_session_summary_sql() -> str:
    from hoop_sessions.build import schema

    return """
UPDATE sessions AS s
SET connection_tag_map = d.connection_tag_map,
    review = d.review,
    approved_by = d.approved_by,
    first_event_time = d.first_event_time,
    last_event_time = d.last_event_time,
    timed_event_count = d.timed_event_count
FROM (
    SELECT x.session_id, x.start_day, t.connection_tag_map, r.review, a.approved_by,
           e.first_event_time, e.last_event_time, e.timed_event_count
    FROM sessions AS x
    LEFT JOIN (
        SELECT session_id, start_day,
               map_from_entries(list((tag_key, tag_value) ORDER BY tag_key)) AS connection_tag_map
        FROM connection_tags
        WHERE start_day BETWEEN $first_day AND $last_day
        GROUP BY session_id, start_day
    ) AS t ON t.session_id = x.session_id AND t.start_day = x.start_day
    LEFT JOIN (
        SELECT review_id, start_day, {review_struct} AS review
        FROM reviews
        WHERE start_day BETWEEN $first_day AND $last_day
    ) AS r ON r.review_id = x.review_id AND r.start_day = x.start_day
    LEFT JOIN (
        SELECT review_id, start_day,
               list(DISTINCT reviewer_email ORDER BY reviewer_email)
                   FILTER (WHERE status = 'APPROVED' AND reviewer_email IS NOT NULL) AS approved_by
        FROM review_groups
        WHERE start_day BETWEEN $first_day AND $last_day
        GROUP BY review_id, start_day
    ) AS a ON a.review_id = x.review_id AND a.start_day = x.start_day
    LEFT JOIN (
        SELECT session_id, start_day,
               min(event_time) AS first_event_time,
               max(event_time) AS last_event_time,
               count(event_time) AS timed_event_count
        FROM session_events
        WHERE start_day BETWEEN $first_day AND $last_day
        GROUP BY session_id, start_day
    ) AS e ON e.session_id = x.session_id AND e.start_day = x.start_day
    WHERE x.start_day BETWEEN $first_day AND $last_day
) AS d
WHERE s.session_id = d.session_id AND s.start_day = d.start_day
""".format(
        review_struct="{"
        + ", ".join(
            f"'{name}': \"{name}\""
            for name in schema.REVIEWS.columns
            if name not in ("session_id", "start_day")
        )
        + "}"
    )


def fill_session_summary(
    con: duckdb.DuckDBPyConnection, first_day: date = date.min, last_day: date = date.max
) -> None:
    """Recompute the ``session_summary()`` columns of the sessions of ``[first_day, last_day]``."""
    con.execute(_fill_session_summary_sql(), {"first_day": first_day, "last_day": last_day})


def missing_session_summary(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The ``session_summary()`` columns that an existing ``sessions`` table lacks."""
    have = _column_types(con, "sessions")
    return [name for name, _, _ in session_summary() if have and name not in have]


def ensure_session_summary(con: duckdb.DuckDBPyConnection) -> None:
    """Give ``sessions`` the ``session_summary()`` columns, filled for every day, if it lacks them.

    A column whose type changed (the reviews table gained a column) is made again. One
    transaction: a warehouse has the columns filled, or not at all. Call it outside a transaction.
    """
    have = _column_types(con, "sessions")
    if not have:
        return
    stale = []
    for name, type_, _ in session_summary():
        # DuckDB's own spelling of the type, to compare with the one it reports for the column.
        (spelled,) = con.execute(f"SELECT typeof(CAST(NULL AS {type_}))").fetchall()[0]
        if have.get(name) != spelled:
            stale.append((name, type_))
    if not stale:
        return
    (rows,) = con.execute("SELECT count(*) FROM sessions").fetchall()[0]
    if rows:
        log.info("computing the session summary columns of %d loaded sessions", rows)
    with transaction(con):
        for name, type_ in stale:
            if name in have:
                con.execute(f'ALTER TABLE sessions DROP COLUMN "{name}"')
            con.execute(f'ALTER TABLE sessions ADD COLUMN "{name}" {type_}')
        fill_session_summary(con)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The block's statements as one transaction: committed at its end, rolled back if it raises
    (an interrupt too), so a reader sees all of them or none."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        # A COMMIT that failed has already rolled back (DuckDB then has no transaction to roll
        # back, and saying so would hide why the commit failed).
        with contextlib.suppress(duckdb.TransactionException):
            con.execute("ROLLBACK")
        raise


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'", [name]
    ).fetchone()
    return bool(row and row[0])


# Under this limit DuckDB spills a day of many large streams to its temporary directory and loads
# it in the same time as under twice the limit, with a clearly lower peak. A day whose events are
# few but large (one 100 MiB stream in 534 events: 200 MiB of payload and text in fewer rows than
# one DuckDB row group) cannot commit under it, and is loaded again under twice the limit, up to
# half the machine's memory. docs/performance.md has the figures.
LOAD_MEMORY_LIMIT_MB = 256


# Where a container's memory limit is read: cgroup v2, then v1 ("max" or a huge number: none).
CGROUP_LIMIT_FILES = ("memory.max", "memory/memory.limit_in_bytes")


def _memory_ceiling_mb(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """Half of the memory this process may use, in MB: the machine's, or its container's limit
    when lower (a pod's limit is far below the node's). The load's limit never goes above it."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        total = 8 * LOAD_MEMORY_LIMIT_MB * 1_000_000
    for name in CGROUP_LIMIT_FILES:
        try:
            text = (cgroup_root / name).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
        break
    return max(LOAD_MEMORY_LIMIT_MB, total // 2 // 1_000_000)


def _out_of_memory(exc: duckdb.Error) -> bool:
    """DuckDB ran out of its memory limit: while inserting, or while committing (it then names a
    block it could not pin)."""
    if isinstance(exc, duckdb.OutOfMemoryException):
        return True
    text = str(exc)
    return "failed to pin block" in text or "Out of Memory" in text


def load_day(
    connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
    lake_dir: Path,
    day: date,
) -> dict[str, int]:
    """Replace one day of every day table with the day's lake files, in one transaction.

    Rows need not keep the files' order, and DuckDB is held to a memory limit and one thread.
    The first two lower the peak memory of loading a day with a large stream (DuckDB spills
    instead). The events are read from the day's Parquet file by DuckDB itself, a row group at a
    time: they never pass through Python or Arrow here.

    A day that does not fit ``LOAD_MEMORY_LIMIT_MB`` is rolled back and loaded again under twice
    the limit, up to half the memory the process may use, each time on a new connection from
    ``connect``: on the connection whose commit ran out of memory, DuckDB 2.0.0 loaded the same
    day again with rows of some sessions twice and of others not at all. Past the ceiling,
    ``LoadMemoryError`` says how much was tried.
    """
    limit = LOAD_MEMORY_LIMIT_MB
    while True:
        try:
            with connect() as con:
                return _load_day(con, lake_dir, day, limit)
        except (duckdb.OutOfMemoryException, duckdb.TransactionException) as exc:
            if not _out_of_memory(exc):
                raise
            failed = (
                f"{day} did not fit in {limit} MB of DuckDB memory and was rolled back "
                f"(DuckDB: {str(exc).splitlines()[0]})"
            )
            ceiling = _memory_ceiling_mb()
            if limit >= ceiling:
                raise LoadMemoryError(
                    f"{failed}; {limit} MB is half of this machine's memory, the most a load is "
                    "given: sync this day on a machine with more memory"
                ) from exc
            limit = min(limit * 2, ceiling)
            log.warning("%s; loading it again under %d MB", failed, limit)


def _load_day(
    con: duckdb.DuckDBPyConnection, lake_dir: Path, day: date, limit_mb: int
) -> dict[str, int]:
    from hoop_sessions.build import schema
    from hoop_sessions.paths import table_path

    con.execute(f"SET memory_limit = '{limit_mb}MB'")
    con.execute("SET preserve_insertion_order = false")
    # One thread: each DuckDB thread keeps its own buffers; on a few days of ordinary sessions a
    # load takes the same time with one thread as with several and the build worker's peak
    # memory is lower.
    con.execute("SET threads = 1")
    ensure_schema(con)
    counts: dict[str, int] = {}
    with transaction(con):
        for table in schema.DAY_TABLES:
            columns = ", ".join(f'"{c}"' for c in table.columns)
            con.execute(f'DELETE FROM "{table.name}" WHERE start_day = ?', [day])
            con.execute(
                f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM read_parquet(?)',
                [str(table_path(lake_dir, table.name, day))],
            )
            row = con.execute(
                f'SELECT count(*) FROM "{table.name}" WHERE start_day = ?', [day]
            ).fetchone()
            counts[table.name] = int(row[0]) if row else 0
        fill_session_summary(con, day, day)
    return counts


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    from hoop_sessions.build import schema

    counts = {}
    for table in schema.ALL_TABLES:
        if not has_table(con, table.name):
            counts[table.name] = 0
            continue
        row = con.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()
        counts[table.name] = int(row[0]) if row else 0
    return counts


def replace_ledger(
    con: duckdb.DuckDBPyConnection, days: list[dict[str, Any]], sessions: list[dict[str, Any]]
) -> tuple[int, int]:
    """Replace ``sync_ledger`` and ``sync_ledger_sessions`` with these rows (``ledger.table_rows``),
    in one transaction. Returns the numbers of days and of open or failing sessions."""
    with transaction(con):
        con.execute("DELETE FROM sync_ledger")
        con.execute("DELETE FROM sync_ledger_sessions")
        # One statement per table over a list of structs: executemany runs a statement a row,
        # which is slow over a ledger of many sessions.
        for table, rows in (("sync_ledger", days), ("sync_ledger_sessions", sessions)):
            if rows:
                con.execute(
                    f"INSERT INTO {table} BY NAME SELECT unnest($rows, recursive := true)",
                    {"rows": rows},
                )
    return len(days), len(sessions)
