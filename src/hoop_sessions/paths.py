"""Where the project's files are: its SQL folder, and the lake's files of a day.

Kept free of Arrow: the process that reads hoop (and publishes days to an object store) names and
hashes lake files without loading it.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

PART = "part-0.parquet"
MANIFEST = "_manifest.json"


def table_path(lake_dir: Path, table: str, day: date) -> Path:
    return lake_dir / table / f"start_day={day.isoformat()}" / PART


def manifest_path(lake_dir: Path, day: date) -> Path:
    return lake_dir / "_manifests" / f"start_day={day.isoformat()}" / MANIFEST


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sql_dir() -> Path:
    """The ``sql/`` folder: inside the package when installed, at the repository root in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "sql", here.parents[1] / "sql"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the sql/ folder of hoop-sessions is missing from this installation")
