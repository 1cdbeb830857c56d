"""The chain of day manifests when days are written out of order, and by two processes at once.

A backfill cut into runs writes its days as its runs finish, not in calendar order. Each day is
real: its records are written, built into Parquet and loaded (``ingest_records``), which records
its manifest as a sync does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from hoop_sessions.extract.raw import raw_path
from hoop_sessions.paths import table_path
from hoop_sessions.sync.ingest import ingest_records
from hoop_sessions.warehouse import manifest
from tests.records import session_record

REPO = Path(__file__).resolve().parents[2]
SYNCED = datetime(2026, 11, 20, tzinfo=UTC)
FIRST = date(2026, 11, 1)


def day(n: int) -> date:
    return FIRST + timedelta(days=n - 1)


def write_days(data_dir: Path, numbers: Iterable[int]) -> None:
    """Write, build and record each day, one after another in the order given."""
    for n in numbers:
        records = [
            session_record(
                id=f"0b9f6a3c-1111-4222-8333-{n:06d}{k:06d}",
                start_date=f"{day(n).isoformat()}T0{k}:00:00Z",
                end_date=f"{day(n).isoformat()}T0{k}:05:00Z",
            )
            for k in (1, 2)
        ]
        ingest_records(records, data_dir=data_dir, synced_at=SYNCED)


def problems(data_dir: Path, last: int = 5) -> set[tuple[int, str]]:
    """What ``verify`` finds over days 1..last: (day number, kind of problem)."""
    _, findings = manifest.verify(data_dir, day(1), day(last))
    return {((f.day - FIRST).days + 1, f.problem.split(":")[0]) for f in findings}


def links(data_dir: Path) -> list[str | None]:
    return [
        orjson.loads(manifest.manifest_file(data_dir, d).read_bytes())["previous_day"]
        for d in manifest.manifest_days(data_dir)
    ]


@pytest.mark.parametrize("order", [(5, 1, 3, 2, 4), (5, 4, 3, 2, 1), (2, 4, 1, 5, 3)])
def test_days_recorded_in_any_order_form_one_chain_in_calendar_order_that_verifies_clean(
    tmp_path: Path, order: tuple[int, ...]
) -> None:
    write_days(tmp_path, order)
    assert manifest.verify(tmp_path, day(1), day(5)) == ([day(n) for n in range(1, 6)], [])
    assert links(tmp_path) == [None, *(day(n).isoformat() for n in range(1, 5))]


def flip_a_byte(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 1]))


def edit_manifest(data_dir: Path, n: int, edit: Callable[[dict[str, object]], None]) -> None:
    path = manifest.manifest_file(data_dir, day(n))
    doc = orjson.loads(path.read_bytes())
    edit(doc)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def change_lake_file(data_dir: Path) -> None:
    flip_a_byte(table_path(data_dir / "lake", "sessions", day(3)))


def change_raw_file(data_dir: Path) -> None:
    flip_a_byte(raw_path(data_dir / "raw", day(3)))


def change_manifest(data_dir: Path) -> None:
    edit_manifest(data_dir, 3, lambda doc: doc.update(files={}))


def change_lake_file_and_its_digest_in_the_manifest(data_dir: Path) -> None:
    """The careful forger: the file and the manifest that vouches for it."""
    path = table_path(data_dir / "lake", "sessions", day(3))
    flip_a_byte(path)
    digest = manifest.file_sha256(path)
    edit_manifest(data_dir, 3, lambda doc: doc["files"].update({"lake/sessions": digest}))  # type: ignore[attr-defined]


def delete_manifest(data_dir: Path) -> None:
    manifest.manifest_file(data_dir, day(3)).unlink()


def change_an_earlier_days_link(data_dir: Path) -> None:
    edit_manifest(data_dir, 2, lambda doc: doc.update(previous_manifest_sha256="f" * 64))


TAMPERING = {
    "a lake file": (change_lake_file, {(3, "lake/sessions changed")}),
    "a raw file": (change_raw_file, {(3, "raw changed")}),
    "a manifest": (change_manifest, {(4, "chain broken")}),
    "a lake file and its manifest": (
        change_lake_file_and_its_digest_in_the_manifest,
        {(4, "chain broken")},
    ),
    "a deleted manifest": (delete_manifest, {(4, "chain broken")}),
    "an earlier day's link": (change_an_earlier_days_link, {(2, "chain broken")}),
}


def sync_again(data_dir: Path, n: int) -> None:
    """A later, legitimate sync of day n: an owner edited a session's metadata meanwhile, so the
    day's files and manifest change and the chain is re-linked from it."""
    record = session_record(
        id=f"0b9f6a3c-1111-4222-8333-{n:06d}{1:06d}",
        start_date=f"{day(n).isoformat()}T01:00:00Z",
        end_date=f"{day(n).isoformat()}T01:05:00Z",
        metadata={"ticket": "edited later"},
    )
    before = manifest.manifest_file(data_dir, day(n)).read_bytes()
    ingest_records([record], data_dir=data_dir, synced_at=SYNCED + timedelta(days=1))
    assert manifest.manifest_file(data_dir, day(n)).read_bytes() != before


@pytest.mark.parametrize("what", TAMPERING)
@pytest.mark.parametrize("synced_again", [1, 2, 4, 5])
def test_tampering_is_still_detected_after_another_day_is_synced_again(
    tmp_path: Path, what: str, synced_again: int
) -> None:
    tamper, expected = TAMPERING[what]
    write_days(tmp_path, (5, 1, 3, 2, 4))
    tamper(tmp_path)
    assert expected <= problems(tmp_path)
    # The sync of a day before or after the one changed re-links the chain from that day: the
    # re-link must not hide the change.
    sync_again(tmp_path, synced_again)
    assert expected <= problems(tmp_path)


def test_a_relink_cut_short_by_a_crash_is_completed_by_the_next_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_days(tmp_path, range(1, 6))
    write = manifest._write

    def killed_before_day_three(path: Path, data: bytes) -> None:
        if path == manifest.manifest_file(tmp_path, day(3)):
            raise KeyboardInterrupt("killed")
        write(path, data)

    monkeypatch.setattr(manifest, "_write", killed_before_day_three)
    flip_a_byte(table_path(tmp_path / "lake", "sessions", day(2)))  # day 2 is built again
    with pytest.raises(KeyboardInterrupt):
        manifest.record_day(tmp_path, day(2))
    monkeypatch.setattr(manifest, "_write", write)
    assert problems(tmp_path) == {(3, "chain broken")}

    manifest.record_day(tmp_path, day(5))

    assert problems(tmp_path) == set()


RECORD_IN_PROCESS = """
import sys, time
from datetime import date
from pathlib import Path
from hoop_sessions.warehouse.manifest import record_day

data_dir, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
days = [date.fromisoformat(d) for d in sys.argv[4:]]
ready.touch()
while not go.exists():
    time.sleep(0.005)
for _ in range(3):
    for d in days:
        record_day(data_dir, d)
"""


def test_two_processes_recording_disjoint_days_at_once_leave_one_chain_that_verifies(
    tmp_path: Path,
) -> None:
    write_days(tmp_path, range(1, 9))
    for path in manifest.manifest_dir(tmp_path).iterdir():
        path.unlink()
    go = tmp_path / "go"
    children = []
    for name, numbers in (("odd", (7, 1, 5, 3)), ("even", (8, 2, 6, 4))):
        ready = tmp_path / f"ready-{name}"
        children.append(
            (
                ready,
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        RECORD_IN_PROCESS,
                        str(tmp_path),
                        str(ready),
                        str(go),
                        *(day(n).isoformat() for n in numbers),
                    ],
                    cwd=REPO,
                    env=dict(os.environ),
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    while not all(ready.exists() for ready, _ in children):
        assert all(child.poll() is None for _, child in children), "a recorder died at start"
        time.sleep(0.01)
    go.touch()
    for _, child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err[-3000:]

    assert manifest.verify(tmp_path, day(1), day(8)) == ([day(n) for n in range(1, 9)], [])
    assert links(tmp_path) == [None, *(day(n).isoformat() for n in range(1, 8))]
    history = (manifest.manifest_dir(tmp_path) / manifest.HISTORY).read_bytes().splitlines()
    assert len(history) >= 8  # every day written at least once, each rewrite recorded
