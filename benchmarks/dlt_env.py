"""dlt's own virtualenv, made on first use, so that dlt never constrains the project's dependencies.

``benchmarks/.dlt-venv`` (git-ignored) is created with the project's private uv (``.tools/bin/uv``,
which ``make`` installs), else a ``uv`` on PATH, else ``python -m venv`` and pip. A stamp file holds
the pinned requirement: changing the pin rebuilds the environment. Harness runs that start together
(a test beside ``make bench``) take turns on a lock file: one installs, the others then find it made.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

# Pinned so that figures from different runs compare; bump deliberately.
DLT_REQUIREMENT = "dlt[duckdb]==1.31.0"

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
VENV_DIR = BENCH_DIR / ".dlt-venv"
STAMP = VENV_DIR / ".installed"
LOCK = BENCH_DIR / ".dlt-venv.lock"


class DltUnavailable(RuntimeError):
    """dlt could not be installed; the message says why (it is shown as 'not run')."""


def venv_python() -> Path:
    return VENV_DIR / "bin" / "python"


def _uv() -> str | None:
    private = REPO_DIR / ".tools" / "bin" / "uv"
    if private.exists():
        return str(private)
    return shutil.which("uv")


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise DltUnavailable(f"`{' '.join(argv[:3])} ...` failed: {tail}")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    with LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_dlt(requirement: str = DLT_REQUIREMENT) -> Path:
    """The python of a virtualenv holding ``requirement``; installs it when missing."""
    with _locked():
        return _ensure(requirement)


def _ensure(requirement: str) -> Path:
    python = venv_python()
    if python.exists() and STAMP.exists() and STAMP.read_text().strip() == requirement:
        return python
    if VENV_DIR.exists():
        shutil.rmtree(VENV_DIR)
    uv = _uv()
    try:
        if uv:
            # The interpreter that runs the harness, so no Python is downloaded.
            _run([uv, "venv", "--quiet", "--python", sys.executable, str(VENV_DIR)])
            _run([uv, "pip", "install", "--quiet", "--python", str(python), requirement])
        else:
            _run([sys.executable, "-m", "venv", str(VENV_DIR)])
            _run([str(python), "-m", "pip", "install", "--quiet", requirement])
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DltUnavailable(f"could not create {VENV_DIR.name}: {exc}") from None
    STAMP.write_text(requirement + "\n")
    return python
