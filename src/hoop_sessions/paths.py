"""Where the project's SQL files are, installed as a wheel or run from a checkout."""

from __future__ import annotations

from pathlib import Path


def sql_dir() -> Path:
    """The ``sql/`` folder: inside the package when installed, at the repository root in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "sql", here.parents[1] / "sql"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the sql/ folder of hoop-sessions is missing from this installation")
