"""A raw file that cannot be written (disk full, no permission, read-only file system) fails with
one line naming the file and the cause, and leaves no temporary file behind."""

from __future__ import annotations

import errno
import io
import os
from datetime import date
from pathlib import Path

import pytest

from hoop_sessions.errors import StorageError
from hoop_sessions.extract.raw import RawDay, RawDayWriter, day_dir, raw_path

DAY = date(2026, 11, 1)


def body() -> bytes:
    """A body that does not compress (random bytes, each call new)."""
    return b'{"id": "s", "event_stream": "' + os.urandom(3000).hex().encode() + b'"}'


class FillsUp(io.FileIO):
    """A file on a disk with ``room`` bytes left: past them a write fails as the kernel fails it."""

    def __init__(self, path: Path, room: int, code: int) -> None:
        super().__init__(path, "wb")
        self.room = room
        self.code = code

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        size = memoryview(data).nbytes
        if size > self.room:
            raise OSError(self.code, os.strerror(self.code))
        self.room -= size
        return super().write(data)


def fill_disk(
    monkeypatch: pytest.MonkeyPatch, *, room: int, code: int = errno.ENOSPC, only: str = ""
) -> None:
    def opener(path: Path):  # type: ignore[no-untyped-def]
        return FillsUp(path, room, code) if only in str(path) else open(path, "wb")

    monkeypatch.setattr(RawDayWriter, "_open", staticmethod(opener))


def write_day(raw_dir: Path, bodies: int, header: dict | None = None) -> None:  # type: ignore[type-arg]
    """Write ``bodies`` bodies of the day, then commit them when a header is given."""
    with RawDayWriter(raw_dir, DAY) as writer:
        for _ in range(bodies):
            writer.write(body())
        if header is not None:
            writer.commit(header)


def leftovers(raw_dir: Path) -> list[str]:
    return sorted(p.name for p in day_dir(raw_dir, DAY).iterdir() if p.name.startswith("."))


def test_a_full_disk_while_bodies_are_written_names_the_file_and_removes_the_temporary_files(
    tmp_path, monkeypatch
):
    fill_disk(monkeypatch, room=2_000)
    with pytest.raises(StorageError) as info:
        write_day(tmp_path, 50)
    assert str(info.value) == f"cannot write {raw_path(tmp_path, DAY)}: No space left on device"
    assert leftovers(tmp_path) == []


def test_a_full_disk_while_the_file_is_committed_keeps_the_previous_file_and_leaves_no_temporary_file(
    tmp_path, monkeypatch
):
    with RawDayWriter(tmp_path, DAY) as writer:
        writer.write(b'{"id": "old"}')
        writer.commit({"order": ["old"]})
    fill_disk(monkeypatch, room=10_000, only=".tmp")
    with pytest.raises(StorageError, match="No space left on device"):
        write_day(tmp_path, 20, {"order": ["new"]})
    assert leftovers(tmp_path) == []
    assert RawDay(tmp_path, DAY).header == {"order": ["old"]}


@pytest.mark.parametrize(
    ("code", "text"), [(errno.EACCES, "Permission denied"), (errno.EROFS, "Read-only file system")]
)
def test_a_refused_write_fails_with_the_cause_in_one_line(tmp_path, monkeypatch, code, text):
    fill_disk(monkeypatch, room=0, code=code)
    with pytest.raises(StorageError) as info:
        write_day(tmp_path, 1, {})
    assert str(info.value) == f"cannot write {raw_path(tmp_path, DAY)}: {text}"
    assert "\n" not in str(info.value)
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes into a directory without write permission"
)
def test_a_day_directory_without_write_permission_fails_with_the_cause(tmp_path):
    day_dir(tmp_path, DAY).mkdir(parents=True)
    day_dir(tmp_path, DAY).chmod(0o500)
    try:
        with pytest.raises(StorageError, match="Permission denied"):
            RawDayWriter(tmp_path, DAY)
    finally:
        day_dir(tmp_path, DAY).chmod(0o700)
