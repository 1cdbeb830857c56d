"""The build worker: it builds and loads a day in a process of its own, reports errors as text,
dies with its run, keeps Arrow lean, and starts no other process."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
import time
from datetime import date

import duckdb
import pytest

from hoop_sessions.build.result import BuildResult
from hoop_sessions.errors import HoopSessionsError
from hoop_sessions.sync.run import extract_days_async
from hoop_sessions.sync.worker import BuildWorker
from tests.conftest import FIRST_DAY, settings_for


def _python(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout.split()


def test_a_day_is_built_and_loaded_by_the_worker(gateway_factory, tmp_path):
    gateway = gateway_factory(days=1, sessions_per_day=30, seed=2)
    settings = settings_for(gateway, tmp_path)
    done, failed = asyncio.run(extract_days_async(settings, [FIRST_DAY]))
    assert not failed and FIRST_DAY in done
    worker = BuildWorker()
    try:
        built, rows = worker.build_and_load(settings, FIRST_DAY, True)
        unchanged = worker.build_and_load(settings, FIRST_DAY, False)
    finally:
        worker.close()
    assert isinstance(built, BuildResult)
    assert built.sessions_loaded == done[FIRST_DAY].sessions_listed > 0
    assert rows["sessions"] == built.sessions_loaded
    assert unchanged == (None, {})
    with duckdb.connect(str(settings.load_path), read_only=True) as con:  # published by the run
        assert con.execute("SELECT count(*) FROM sessions").fetchone() == (built.sessions_loaded,)


def test_an_error_in_the_worker_comes_back_as_a_clear_error_and_the_worker_goes_on(
    gateway_factory, tmp_path
):
    gateway = gateway_factory(days=1, sessions_per_day=5, seed=2)
    settings = settings_for(gateway, tmp_path)
    settings.ensure_data_dir()
    worker = BuildWorker()
    try:
        with pytest.raises(HoopSessionsError, match=r"2026-10-01"):
            worker.build_and_load(settings, date(2026, 10, 1), True)  # never extracted: no raw file
        assert worker.build_and_load(settings, date(2026, 10, 1), False) == (None, {})
    finally:
        worker.close()


def test_a_worker_that_dies_fails_the_day_with_its_exit_code(gateway_factory, tmp_path):
    settings = settings_for(gateway_factory(days=1, sessions_per_day=5, seed=2), tmp_path)
    worker = BuildWorker()
    worker._process.kill()
    worker._process.wait()
    with pytest.raises(
        HoopSessionsError, match=r"build worker ended while building 2026-11-01 \(exit code -9\)"
    ):
        worker.build_and_load(settings, FIRST_DAY, True)
    worker.close()


def test_the_worker_is_the_only_process_a_run_starts():
    """No resource tracker (multiprocessing starts one, of 12 MiB, for a process pool)."""
    code = (
        "import os, subprocess, time\n"
        "from hoop_sessions.sync.worker import BuildWorker\n"
        "w = BuildWorker()\n"
        "out = subprocess.run(['ps', '-o', 'args=', '--ppid', str(os.getpid())], capture_output=True, text=True).stdout\n"
        "print(sum('hoop_sessions.sync.worker' in line for line in out.splitlines()),"
        " sum('resource_tracker' in line for line in out.splitlines()))\n"
        "w.close()\n"
    )
    assert _python(code) == ["1", "0"]


def test_the_worker_ends_with_its_run():
    code = (
        "import os, sys\n"
        "from hoop_sessions.sync.worker import BuildWorker\n"
        "w = BuildWorker()\n"
        "print(w._process.pid, flush=True)\n"
        "os._exit(0)\n"  # the run dies without closing the worker
    )
    pid = int(_python(code)[0])
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail(f"worker {pid} outlived its run")


def test_the_build_worker_uses_the_system_allocator_and_never_imports_pandas():
    code = (
        "import sys\n"
        "from hoop_sessions.sync.worker import lean_build_process\n"
        "lean_build_process()\n"
        "import pyarrow as pa\n"
        "pa.array([1, 2, 3], type=pa.int64())\n"  # the first pa.array call is when pyarrow looks for pandas
        "print('pandas' in sys.modules, pa.default_memory_pool().backend_name)\n"
    )
    assert _python(code) == ["False", "system"]


def test_a_build_result_comes_back_from_the_worker_without_arrow():
    """The worker's answer is unpickled in the reading process: its class must not need Arrow."""
    result = BuildResult(FIRST_DAY, 1, 1, 0, {"sessions": 1}, {}, {"ok": 1}, {"done": 1})
    code = (
        "import pickle, sys; r = pickle.loads(sys.stdin.buffer.read()); "
        "print(r.sessions_loaded, 'pyarrow' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(result), capture_output=True, check=True
    )
    assert out.stdout.decode().split() == ["1", "False"]


def test_importing_the_sync_does_not_import_arrow():
    """What the worker relies on: the allocator can still be chosen after the sync is imported."""
    code = "import sys, hoop_sessions.sync.run; print('pyarrow' in sys.modules, 'pandas' in sys.modules)"
    assert _python(code) == ["False", "False"]
