"""A day's events go to Parquet batch by batch as they are built, and read back as before."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hoop_sessions import paths
from hoop_sessions.build import lake, schema
from hoop_sessions.build.flatten import DayBuilder
from tests.records import b64, session_record

DAY = date(2026, 11, 1)
SYNCED = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)


def records() -> list[dict]:
    """Three sessions whose streams hold valid text, invalid UTF-8 and an empty payload."""
    out = []
    for n, payloads in enumerate(
        [[b"a" * 40, b"b" * 40, b"c" * 40], [b"\xff\xfe" * 30, b"", b"ok"], [b"x" * 100]]
    ):
        stream = [[0.5 * i, "o", b64(p)] for i, p in enumerate(payloads)]
        out.append(session_record(id=str(uuid.UUID(int=n + 1)), event_stream=stream))
    return out


def build(flush_bytes: int, sink=None) -> tuple[DayBuilder, dict[str, pa.Table]]:
    builder = DayBuilder(DAY, events_sink=sink)
    builder.events.FLUSH_BYTES = flush_bytes
    for record in records():
        builder.add_session(record, synced_at=SYNCED)
    return builder, builder.tables()


def test_events_cut_into_batches_within_a_session_are_the_same_rows_in_the_same_order():
    _, whole = build(flush_bytes=1 << 20)
    builder, cut = build(flush_bytes=30)
    assert len(builder.events.batches) > len(records())  # some sessions span several batches
    assert cut["session_events"].equals(whole["session_events"])
    assert cut["session_events"].column("seq").to_pylist() == [0, 1, 2, 0, 1, 2, 0]


def test_events_handed_to_a_sink_are_not_kept_by_the_builder():
    batches: list[pa.RecordBatch] = []
    builder, tables = build(flush_bytes=30, sink=batches.append)
    _, whole = build(flush_bytes=1 << 20)
    assert "session_events" not in tables
    assert builder.events.batches == [] and builder.events.rows == 7
    assert pa.Table.from_batches(batches, schema=schema.SESSION_EVENTS.schema).equals(
        whole["session_events"]
    )


def test_a_sessions_payloads_are_let_go_of_once_copied_into_a_batch():
    builder = DayBuilder(DAY, events_sink=lambda batch: None)
    builder.events.FLUSH_BYTES = 10
    payloads: list[bytes | None] = [b"p" * 20, b"q" * 20, b"r"]
    builder.events.add("s", 0, [0.0, 1.0, 2.0], ["o", "o", "o"], payloads, {})
    builder.events.flush()
    assert payloads == [None, None, None]


def test_a_day_written_batch_by_batch_reads_back_as_the_table_written_whole(tmp_path):
    batches: list[pa.RecordBatch] = []
    _, tables = build(flush_bytes=30, sink=batches.append)
    _, whole = build(flush_bytes=1 << 20)
    with lake.DayWriter(tmp_path, DAY) as out:
        for batch in batches:
            out.write_batch("session_events", batch)
        for name, table in tables.items():
            out.write_table(name, table)
        out.commit()
    for table in schema.DAY_TABLES:
        assert lake.read_table(tmp_path, table.name, DAY).equals(whole[table.name]), table.name
    events = pq.ParquetFile(paths.table_path(tmp_path, "session_events", DAY))
    assert events.metadata.num_row_groups == len(batches)
    assert lake.day_is_consistent(tmp_path, DAY)


def test_a_day_left_without_commit_keeps_its_previous_files_and_no_temporary_file(tmp_path):
    _, whole = build(flush_bytes=1 << 20)
    lake.write_day(tmp_path, DAY, whole)
    before = {
        t.name: paths.table_path(tmp_path, t.name, DAY).read_bytes() for t in schema.DAY_TABLES
    }

    def fail_half_way() -> None:
        with lake.DayWriter(tmp_path, DAY) as out:
            out.write_batch("session_events", whole["session_events"].to_batches()[0])
            out.write_table("sessions", whole["sessions"].slice(0, 1))
            raise RuntimeError("the build failed half-way")

    with pytest.raises(RuntimeError):
        fail_half_way()
    after = {
        t.name: paths.table_path(tmp_path, t.name, DAY).read_bytes() for t in schema.DAY_TABLES
    }
    assert after == before
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert lake.day_is_consistent(tmp_path, DAY)
