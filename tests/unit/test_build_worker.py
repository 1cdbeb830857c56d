"""The build worker's set-up: it dies with its parent's run and keeps Arrow lean."""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import date

from hoop_sessions import sync

FIRST = date(2026, 11, 1)


def _arrow_state() -> tuple[bool, str, bool]:
    import pyarrow as pa

    pa.array([1, 2, 3], type=pa.int64())  # the first pa.array call is when pyarrow looks for pandas
    return "pandas" in sys.modules, pa.default_memory_pool().backend_name, "pyarrow" in sys.modules


def test_the_build_worker_uses_the_system_allocator_and_never_imports_pandas():
    with ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=sync._start_worker,
        initargs=(os.getpid(),),
    ) as worker:
        has_pandas, backend, has_arrow = worker.submit(_arrow_state).result(timeout=60)
    assert has_arrow
    assert not has_pandas
    assert backend == "system"


def test_a_build_result_comes_back_from_the_worker_without_arrow():
    """The worker's answer is unpickled in the reading process: its class must not need Arrow."""
    import pickle

    from hoop_sessions.values import BuildResult

    result = BuildResult(FIRST, 1, 1, 0, {"sessions": 1}, {}, {"ok": 1}, {"done": 1})
    code = (
        "import pickle, sys; r = pickle.loads(sys.stdin.buffer.read()); "
        "print(r.sessions_loaded, 'pyarrow' in sys.modules)"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(result), capture_output=True, check=True)
    assert out.stdout.decode().split() == ["1", "False"]


def test_importing_the_sync_does_not_import_arrow():
    """What the worker relies on: the allocator can still be chosen after the sync is imported."""
    code = "import sys, hoop_sessions.sync; print('pyarrow' in sys.modules, 'pandas' in sys.modules)"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
