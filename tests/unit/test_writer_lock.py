"""One writer per data directory: a second run waits and says for whom, then proceeds; a run that
waits too long stops with one line naming the holder."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hoop_sessions.errors import WriterLockTimeoutError
from hoop_sessions.lock import HOLDER_FILE, _command, read_holder, writer_lock

HOLD = """
import sys
from pathlib import Path
from hoop_sessions.lock import writer_lock
with writer_lock(Path(sys.argv[1]), what="backfill 2026-11-01..2026-11-30"):
    print("held", flush=True)
    sys.stdin.readline()
"""

WAIT = """
import logging, sys
from pathlib import Path
from hoop_sessions.lock import writer_lock
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
with writer_lock(Path(sys.argv[1]), what="nightly sync", timeout=-1):
    print("writing", flush=True)
"""


def start(code: str, data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def holder(tmp_path):
    """Another process holding the writer lock of ``tmp_path`` until the test releases it."""
    process = start(HOLD, tmp_path)
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    yield process
    if process.poll() is None:
        process.communicate("\n", timeout=30)


def release(process: subprocess.Popen[str]) -> None:
    process.communicate("\n", timeout=30)
    assert process.returncode == 0


def test_a_second_run_waits_says_who_holds_the_directory_then_proceeds(tmp_path, holder):
    waiter = start(WAIT, tmp_path)
    assert waiter.stderr is not None and waiter.stdout is not None
    said = waiter.stderr.readline()
    assert said.startswith("WARNING nightly sync waits for ")
    assert "backfill 2026-11-01..2026-11-30" in said and f"process {holder.pid} " in said
    assert waiter.poll() is None, "it waits while the other run writes"
    release(holder)
    assert waiter.stdout.readline() == "writing\n"
    assert waiter.wait(timeout=30) == 0
    assert "is free now, proceeding" in waiter.stderr.read()


def test_waiting_past_the_timeout_stops_with_one_line_naming_the_holder(tmp_path, holder, caplog):
    caplog.set_level(logging.WARNING, "hoop_sessions.lock")
    with (
        pytest.raises(WriterLockTimeoutError) as info,
        writer_lock(tmp_path, what="nightly sync", timeout=0.1),
    ):
        pytest.fail("the lock was taken while another process held it")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        f"nightly sync: {tmp_path} was still being written by backfill 2026-11-01..2026-11-30"
    )
    assert f"process {holder.pid} " in message and "HOOP_WAREHOUSE_LOCK_TIMEOUT" in message
    assert len([r for r in caplog.records if "waits for" in r.getMessage()]) == 1


def test_the_holder_is_recorded_while_the_lock_is_held_and_removed_after(tmp_path):
    with writer_lock(tmp_path, what="backfill"):
        holder = read_holder(tmp_path)
        assert (
            holder is not None and holder["what"] == "backfill" and isinstance(holder["pid"], int)
        )
    assert not (tmp_path / HOLDER_FILE).exists()


def test_a_run_that_holds_the_lock_can_enter_it_again_without_waiting_for_itself(tmp_path):
    with writer_lock(tmp_path, what="backfill"), writer_lock(tmp_path, what="sync", timeout=0):
        assert read_holder(tmp_path)["what"] == "backfill"  # type: ignore[index]
    with writer_lock(tmp_path, what="again", timeout=0):
        pass


def test_another_thread_of_the_same_process_waits_too(tmp_path):
    outcome: list[str] = []
    with writer_lock(tmp_path, what="backfill"):

        def other() -> None:
            try:
                with writer_lock(tmp_path, what="asset", timeout=0.1):
                    outcome.append("entered")
            except WriterLockTimeoutError:
                outcome.append("timed out")

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert outcome == ["timed out"]


def test_the_recorded_command_hides_the_value_of_a_token_option():
    assert _command(
        ["/usr/bin/hoop-sessions", "simulate", "--token", "s3cret", "--api-token=x"]
    ) == ("hoop-sessions simulate --token *** --api-token=***")
