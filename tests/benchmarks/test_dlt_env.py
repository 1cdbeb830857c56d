"""Harness runs that start together share one dlt virtualenv: one installs it, the others wait.

Two `make test` workers once each ran the benchmark smoke run; the second found the first's
half-made environment, removed it under the installer and failed. The installer here is replaced
by one that takes a while and writes what uv would, since the real one needs the package index.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from benchmarks import dlt_env


@pytest.fixture
def slow_installer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    venv = tmp_path / ".dlt-venv"
    monkeypatch.setattr(dlt_env, "VENV_DIR", venv)
    monkeypatch.setattr(dlt_env, "STAMP", venv / ".installed")
    monkeypatch.setattr(dlt_env, "LOCK", tmp_path / ".dlt-venv.lock", raising=False)
    monkeypatch.setattr(dlt_env, "_uv", lambda: "uv")
    calls: list[list[str]] = []

    def run(argv: list[str]) -> None:
        calls.append(argv)
        if argv[1] == "venv":
            (venv / "bin").mkdir(parents=True)
            (venv / "bin" / "python").write_text("")
        time.sleep(0.3)  # long enough for the other caller to arrive mid-install
        assert (venv / "bin" / "python").exists(), "the environment was removed under the installer"

    monkeypatch.setattr(dlt_env, "_run", run)
    return calls


def test_concurrent_callers_install_once_and_both_get_the_environment(slow_installer):
    results: list[object] = []

    def call() -> None:
        try:
            results.append(dlt_env.ensure_dlt("dlt==0.0.1"))
        except BaseException as exc:  # reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join(timeout=10)
    assert results == [dlt_env.venv_python(), dlt_env.venv_python()], results
    assert [argv[1] for argv in slow_installer] == ["venv", "pip"], "installed once"
    assert dlt_env.STAMP.read_text().strip() == "dlt==0.0.1"


def test_a_changed_pin_rebuilds_the_environment(slow_installer):
    dlt_env.ensure_dlt("dlt==0.0.1")
    leftover = dlt_env.VENV_DIR / "lib" / "old-package"
    leftover.mkdir(parents=True)
    dlt_env.ensure_dlt("dlt==0.0.2")
    assert not leftover.exists()
    assert dlt_env.STAMP.read_text().strip() == "dlt==0.0.2"
    assert [argv[1] for argv in slow_installer] == ["venv", "pip", "venv", "pip"]
