"""Reading a lake back, from the store (following its commit documents) or from a local directory,
in a form two runs can be compared in: rows sorted, the columns that say when a run ran left out."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.dataset as ds

from hoop_sessions.build import schema
from hoop_sessions.store import ObjectStore
from hoop_sessions.sync import mirror
from tests.reliability.conftest import RUN_TIME_COLUMNS

Rows = list[tuple[Any, ...]]


def commits(store: ObjectStore) -> dict[date, dict[str, Any]]:
    """The lake commit document of every day the store has one for."""
    out = {}
    for key in store.list("lake/_commits"):
        day = date.fromisoformat(
            key.rsplit("/", 1)[-1].removeprefix("start_day=").removesuffix(".json")
        )
        data = store.get_bytes(key)
        assert data is not None, key
        out[day] = orjson.loads(data)
        assert mirror.commit_key(day) == key
    return out


def committed_keys(store: ObjectStore) -> set[str]:
    """Every lake object a commit names."""
    return {entry["key"] for doc in commits(store).values() for entry in doc["tables"].values()}


def lake_objects(store: ObjectStore) -> set[str]:
    """Every data object under lake/ (the commit documents left out)."""
    return {key for key in store.list("lake") if not key.startswith("lake/_commits/")}


def _rows(table: pa.Table) -> Rows:
    keep = [c for c in table.column_names if c not in RUN_TIME_COLUMNS]
    return sorted((tuple(r.values()) for r in table.select(keep).to_pylist()), key=repr)


def store_lake(store: ObjectStore) -> dict[str, Rows]:
    """Every day table as the store's commits name its files, read through Arrow's S3 client
    (another client than the one that wrote them)."""
    by_table: dict[str, list[str]] = {t.name: [] for t in schema.DAY_TABLES}
    for doc in commits(store).values():
        for name, entry in doc["tables"].items():
            by_table[name].append(store.path(entry["key"]))
    return {
        name: _rows(ds.dataset(paths, filesystem=arrow_s3(), format="parquet").to_table())
        for name, paths in by_table.items()
    }


def arrow_s3() -> Any:
    """Arrow's own S3 client, on the test server's variables: a reader independent of the
    project's store client."""
    from urllib.parse import urlsplit

    from pyarrow import fs

    endpoint = urlsplit(os.environ["AWS_ENDPOINT_URL"])
    return fs.S3FileSystem(
        endpoint_override=endpoint.netloc, scheme=endpoint.scheme, region=os.environ["AWS_REGION"]
    )


def local_lake(lake_dir: Path) -> dict[str, Rows]:
    """Every day table of a local lake (the files of each day's directory)."""
    out = {}
    for table in schema.DAY_TABLES:
        files = sorted(str(p) for p in (lake_dir / table.name).glob("start_day=*/*.parquet"))
        out[table.name] = _rows(ds.dataset(files, format="parquet").to_table())
    return out
