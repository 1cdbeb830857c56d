"""Helpers of the reliability suite: content hashes of a warehouse, the CLI as a subprocess."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hoop_sessions.build.schema import ALL_TABLES
from tests.reliability.hostile import HostileGateway

# Columns that say when or how a sync ran, not what it read: left out of content comparisons.
RUN_TIME_COLUMNS = (
    "synced_at",
    "started_at",
    "finished_at",
    "seen_at",
    "found_at",
    "requests",
    "retries",
    "pages",
    "api_url",
)
# A finding's evidence may quote them too, or figures made from them (not_final_after_days).
RUN_TIME_EVIDENCE = (*RUN_TIME_COLUMNS, "age_days_at_sync")
RUN_TIME_PATCH = "{" + ", ".join(f'"{c}": null' for c in RUN_TIME_EVIDENCE) + "}"


def _existing_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
        ).fetchall()
    }


def content_hash(warehouse: Path, *, day: date | None = None) -> dict[str, str]:
    """SHA-256 of every table's rows (sorted, run-time columns left out), by table.

    A table that does not exist hashes as absent. With ``day``, only that day's rows.
    """
    out: dict[str, str] = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        existing = _existing_tables(con)
        for table in ALL_TABLES:
            if table.name not in existing:
                out[table.name] = "absent"
                continue
            cols = ", ".join(
                f'json_merge_patch("{c}", \'{RUN_TIME_PATCH}\') AS "{c}"'
                if c == "detail"
                else f'"{c}"'
                for c in table.columns
                if c not in RUN_TIME_COLUMNS
            )
            where = "WHERE start_day = ?" if day is not None else ""
            rows = con.execute(
                f'SELECT {cols} FROM "{table.name}" {where} ORDER BY ALL',
                [day] if day is not None else [],
            ).fetchall()
            digest = hashlib.sha256()
            for row in rows:
                digest.update(repr(row).encode())
                digest.update(b"\n")
            out[table.name] = f"{len(rows)} rows, sha256 {digest.hexdigest()[:16]}"
    return out


def run_cli(
    *args: str,
    env: dict[str, str],
    timeout: float = 300,
    preexec_fn: Any = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m hoop_sessions ARGS`` with the environment of this process plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "hoop_sessions", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )


def backfill(
    first: date, last: date, *flags: str, env: dict[str, str], **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """``hoop-sessions backfill --start FIRST --end LAST [FLAGS]``, run as ``run_cli`` runs it."""
    return run_cli("backfill", "--start", str(first), "--end", str(last), *flags, env=env, **kwargs)


def cli_env(url: str, token: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "HOOP_API_URL": url,
        "HOOP_API_TOKEN": token,
        "HOOP_DATA_DIR": str(data_dir),
        "HOOP_RETRY_MAX_SECONDS": "60",
        "HOOP_TIMEOUT_SECONDS": "10",
        "HOOP_WAREHOUSE_LOCK_TIMEOUT": "60",
        **extra,
    }


@pytest.fixture
def hostile() -> Iterator[HostileGateway]:
    """A scripted hostile gateway on loopback, stopped at the end of the test."""
    with HostileGateway() as gateway:
        yield gateway
