"""How a reader opens the warehouse: the snapshot published by the last completed load.

For a local ``HOOP_DATA_DIR`` that is ``$HOOP_DATA_DIR/warehouse.duckdb``, opened read-only. For an
object store it is ``<HOOP_DATA_DIR>/warehouse.duckdb``, attached read-only by DuckDB straight from
the store: DuckDB reads the pages a query needs through the project's store client, handed to DuckDB as an
fsspec filesystem (the shape it accepts), so no extension has to be downloaded and nothing is
copied first.
A reader never holds a lock a load waits for, and reconnecting gives the newest snapshot.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from hoop_sessions.config import Settings
from hoop_sessions.errors import HoopSessionsError
from hoop_sessions.store import ObjectStore
from hoop_sessions.warehouse import load as warehouse

PROTOCOL = "hoopstore"  # DuckDB would ask for its httpfs extension for s3://; this name is ours


def _filesystem(store: ObjectStore) -> Any:
    """The store as an fsspec filesystem (the shape DuckDB accepts), reading by byte ranges."""
    from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

    def key_of(path: str) -> str:
        name = str(path).split("://", 1)[-1]
        return name.removeprefix(store.root).lstrip("/")

    class StoreFile(AbstractBufferedFile):  # type: ignore[misc]
        def _fetch_range(self, start: int, end: int) -> bytes:
            return store.read_range(key_of(self.path), start, min(end, self.size))

    class StoreFileSystem(AbstractFileSystem):  # type: ignore[misc]
        protocol = PROTOCOL
        root_marker = ""
        cachable = False

        def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
            found = store.info(key_of(path))
            if found is None:
                raise FileNotFoundError(path)
            return {"name": path, "size": found.size, "type": "file"}

        def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
            key = key_of(path)
            found = store.info(key)
            entries = [found] if found is not None else list(store.list(key).values())
            if detail:
                return [
                    {"name": store.path(e.key), "size": e.size, "type": "file"} for e in entries
                ]
            return [store.path(e.key) for e in entries]

        def _open(self, path: str, mode: str = "rb", block_size: Any = None, **kwargs: Any) -> Any:
            if mode != "rb":
                raise PermissionError(f"{path}: the published warehouse is read-only")
            return StoreFile(self, path, mode, block_size=block_size or 4 * 2**20, **kwargs)

    return StoreFileSystem()


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
