"""How a reader opens the warehouse: the snapshot published by the last completed load.

For a local ``HOOP_DATA_DIR`` that is ``$HOOP_DATA_DIR/warehouse.duckdb``, opened read-only. For an
object store it is ``<HOOP_DATA_DIR>/warehouse.duckdb``, attached read-only by DuckDB straight from
the store: DuckDB reads the pages a query needs through ``pyarrow.fs`` (wrapped for fsspec, which
DuckDB accepts as a filesystem), so no extension has to be downloaded and nothing is copied first.
A reader never holds a lock a load waits for, and reconnecting gives the newest snapshot.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from hoop_sessions import warehouse
from hoop_sessions.config import Settings
from hoop_sessions.errors import HoopSessionsError
from hoop_sessions.store import ObjectStore

PROTOCOL = "hoopstore"  # DuckDB would ask for its httpfs extension for s3://; this name is ours


def _filesystem(store: ObjectStore) -> Any:
    from fsspec.implementations.arrow import ArrowFSWrapper

    class StoreFileSystem(ArrowFSWrapper):  # type: ignore[misc]
        protocol = PROTOCOL
        root_marker = ""

        @classmethod
        def _strip_protocol(cls, path: Any) -> Any:
            if isinstance(path, list):
                return [cls._strip_protocol(p) for p in path]
            return str(path).split("://", 1)[-1].rstrip("/")

    return StoreFileSystem(store.fs)


def location(settings: Settings) -> str:
    """Where the published warehouse is, for messages."""
    if settings.data_url:
        return f"{settings.data_location}/warehouse.duckdb"
    return str(settings.warehouse_path)


def exists(settings: Settings) -> bool:
    store = settings.store
    if store is None:
        return settings.warehouse_path.is_file()
    return store.info("warehouse.duckdb") is not None


@contextmanager
def connect(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the published warehouse, closed at the end of the block."""
    store = settings.store
    if store is None:
        with warehouse.connect(
            settings.warehouse_path, read_only=True, lock_timeout=settings.lock_timeout_seconds
        ) as con:
            yield con
        return
    con = duckdb.connect()
    try:
        con.register_filesystem(_filesystem(store))
        target = f"{PROTOCOL}://{store.path('warehouse.duckdb')}".replace("'", "''")
        try:
            con.execute(f"ATTACH '{target}' AS warehouse (READ_ONLY)")
        except duckdb.Error as exc:
            raise HoopSessionsError(
                f"the published warehouse {location(settings)} cannot be attached: {exc}. Run a "
                "sync first, or check the store's credentials"
            ) from None
        con.execute("USE warehouse")
        yield con
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute("USE memory")
            con.execute("DETACH warehouse")
            con.unregister_filesystem(PROTOCOL)
        con.close()
