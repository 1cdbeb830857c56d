"""The build worker: one child process that builds and loads days while the run reads the next.

The run starts it with ``subprocess`` and sends it pickled requests over its standard input; the
answers come back over a pipe of their own (the worker's standard output goes to its standard
error, so that nothing printed by a library can corrupt them). Not ``multiprocessing``: its spawn
start method also starts multiprocessing's resource tracker, a third Python process,
for the semaphores of the pool's queues, and this worker needs none.

Requests are ``(settings, day, changed)``; answers ``("ok", (BuildResult | None, rows))`` or
``("error", "ExceptionName: message")`` (plain text, so that any error comes back).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from datetime import date
from typing import IO, Any

from hoop_sessions.build.result import BuildResult
from hoop_sessions.config import Settings
from hoop_sessions.errors import HoopSessionsError
from hoop_sessions.sync.day import build_and_load

_LENGTH = struct.Struct("!Q")


class BuildWorker:
    """The worker process, one request at a time; ``close()`` ends it after its current day."""

    def __init__(self) -> None:
        answers_read, answers_write = os.pipe()
        env = dict(os.environ)
        # The worker imports what this process imports, from the same places.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            self._process = subprocess.Popen(  # noqa: S603  # this interpreter, fixed arguments
                [
                    sys.executable,
                    "-m",
                    "hoop_sessions.sync.worker",
                    str(os.getpid()),
                    str(answers_write),
                ],
                stdin=subprocess.PIPE,
                pass_fds=(answers_write,),
                env=env,
            )
        finally:
            os.close(answers_write)
        self._answers = os.fdopen(answers_read, "rb")
        self._lock = threading.Lock()

    def build_and_load(
        self, settings: Settings, day: date, changed: bool
    ) -> tuple[BuildResult | None, dict[str, int]]:
        """Blocking: call it from a thread (``loop.run_in_executor(None, ...)``)."""
        with self._lock:
            requests = self._process.stdin
            assert requests is not None
            try:
                _send(requests, (settings, day, changed))
                status, value = _receive(self._answers)
            except (OSError, EOFError, pickle.UnpicklingError):
                code = self._process.wait()
                raise HoopSessionsError(
                    f"the build worker ended while building {day} (exit code {code}); the day's "
                    "previous content is kept"
                ) from None
        if status == "error":
            raise HoopSessionsError(value)
        result: tuple[BuildResult | None, dict[str, int]] = value
        return result

    def close(self) -> None:
        """No more requests: the worker ends once its current one is done."""
        with self._lock:
            if self._process.stdin is not None:
                with contextlib.suppress(OSError):
                    self._process.stdin.close()
            try:
                self._process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._answers.close()


def _send(channel: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    channel.write(_LENGTH.pack(len(data)) + data)
    channel.flush()


def _receive(channel: IO[bytes]) -> Any:
    header = channel.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise EOFError("the channel closed")
    (size,) = _LENGTH.unpack(header)
    data = channel.read(size)
    if len(data) < size:
        raise EOFError("the channel closed mid-message")
    return pickle.loads(data)  # noqa: S301  # between this run and the worker it started


class _NoPandas:
    """An import finder that refuses pandas: the build worker never uses it (see below)."""

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not used in the build worker")


def lean_build_process() -> None:
    """Keep the build worker's memory down (the figures are in docs/performance.md).

    - pyarrow imports pandas, when it is installed, on its first ``pa.array`` call only to ask
      whether the values are a pandas object: hundreds of modules that building Arrow arrays
      from Python lists never uses. Refusing the import makes pyarrow treat pandas as absent.
    - Arrow's default allocator (mimalloc) keeps freed pages between days; the system allocator,
      trimmed after each day (``build.day.release_memory``), returns them.
      It must be chosen before pyarrow is imported, so this runs first in the worker.
    """
    sys.meta_path.insert(0, _NoPandas())
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def die_with_parent(parent: int) -> None:
    """In the build worker: end when the run that started it is killed (Linux), not live on."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the closed request pipe still ends it
        pass
    if os.getppid() != parent:  # the run died while this worker was starting
        os._exit(1)


def main(argv: list[str]) -> int:
    parent, answers_fd = int(argv[0]), int(argv[1])
    die_with_parent(parent)
    lean_build_process()
    # Ctrl-C reaches the whole process group: the run decides what happens (it lets the current
    # load finish), the worker does not die half-way through one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = sys.stdin.buffer
    answers = os.fdopen(answers_fd, "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    while True:
        try:
            settings, day, changed = _receive(requests)
        except EOFError:
            return 0
        try:
            answer: tuple[str, Any] = ("ok", build_and_load(settings, day, changed))
        except Exception as exc:
            answer = ("error", f"{type(exc).__name__}: {exc}")
        _send(answers, answer)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
