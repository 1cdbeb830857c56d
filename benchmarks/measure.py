"""Run one contender in its own process and measure it: wall time, CPU seconds, peak RSS.

CPU comes from ``os.wait4`` on that very child, which returns the kernel's resource usage of the
child and of every descendant it waited for. This is exact, and unlike deltas of
``RUSAGE_CHILDREN`` it cannot mix in another child of the harness (the simulator is a child too,
reaped only at the end). Its ``ru_maxrss`` is the peak of the largest single process, not of the
tree; a sampler thread therefore also adds up ``/proc/<pid>/status`` of the child and its
descendants ten times a second. The reported peak RSS is the larger of the two.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024


@dataclass
class ProcessRun:
    """What one measured child process did and cost."""

    argv: list[str]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_mib: float
    stdout: str
    stderr: str
    # (seconds since start, resident MiB of the child and its descendants) samples.
    rss_samples: list[tuple[float, float]] = field(default_factory=list)

    @property
    def peak_tree_rss_mib(self) -> float:
        """Peak of the sampled RSS of the whole process tree (may miss spikes shorter than the
        sampling period, which ``peak_rss_mib`` from the kernel does not)."""
        return max((mib for _, mib in self.rss_samples), default=0.0)

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def rss_by_third(self) -> tuple[float, float, float]:
        """Peak sampled RSS in the first, middle and last third of the run (flat memory: equal)."""
        if not self.rss_samples:
            return (0.0, 0.0, 0.0)
        end = self.rss_samples[-1][0] or 1.0
        thirds = [0.0, 0.0, 0.0]
        for at, mib in self.rss_samples:
            i = min(int(3 * at / end), 2)
            thirds[i] = max(thirds[i], mib)
        return (thirds[0], thirds[1], thirds[2])

    def tail(self, lines: int = 15) -> str:
        """The end of the child's output, to explain a failure."""
        text = (self.stderr.strip() + "\n" + self.stdout.strip()).strip()
        return "\n".join(text.splitlines()[-lines:])


def _rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found.extend(int(c) for c in fh.read().split())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return found


def tree_rss_mib(pid: int) -> float | None:
    """Resident MiB of a process and all its descendants, added up (the sync builds and loads
    days in a worker process: its memory counts as much as the parent's)."""
    total = _rss_mib(pid)
    if total is None:
        return None
    todo = _children(pid)
    while todo:
        child = todo.pop()
        total += _rss_mib(child) or 0.0
        todo.extend(_children(child))
    return total


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout_s: float = 3600.0,
    sample_every_s: float = 0.1,
) -> ProcessRun:
    """Run ``argv`` to completion and measure it. Output is captured in files, not pipes, so a
    chatty child can never block on a full pipe while the harness waits for it."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )
        samples: list[tuple[float, float]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(sample_every_s):
                mib = tree_rss_mib(proc.pid)
                if mib is not None:
                    samples.append((time.perf_counter() - started, mib))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        killer = threading.Timer(timeout_s, proc.kill)
        killer.start()
        try:
            # wait4 on this pid: the child's own rusage (with its reaped descendants), not the
            # cumulative RUSAGE_CHILDREN of the harness.
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
            done.set()
            sampler.join()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    return ProcessRun(
        argv=list(argv),
        returncode=proc.returncode,
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        # ru_maxrss is in KiB on Linux.
        peak_rss_mib=usage.ru_maxrss / 1024,
        stdout=stdout,
        stderr=stderr,
        rss_samples=samples,
    )
