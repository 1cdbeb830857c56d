"""Records of newer gateways and RDP sessions go through the real ingest path (raw file, lake,
warehouse) whole: unknown values are stored and counted, malformed sub-fields nulled and noted."""

import base64
import hashlib
from datetime import UTC, date, datetime, time

import duckdb
import orjson
import pytest

from hoop_sessions.build import schema
from hoop_sessions.build.day import build_tables
from hoop_sessions.config import Settings
from hoop_sessions.extract.protect import protect_output
from hoop_sessions.sync.ingest import ingest_records
from tests.records import DROP, RID, b64, session_record

DAY = date(2026, 11, 1)
SYNCED = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
RDP_ID = "2b9f6a3c-1111-4222-8333-444455556666"
NEWER_ID = "3b9f6a3c-1111-4222-8333-444455556666"
HANDSHAKE = b"\x03\x00\x00\x13\x0e\xd0\x00\x00\x124\x00\x02\x1f\x08\x00\x02\x00\x00\x00"
# Two bitmap updates as the RDP recorder writes them: the JSON of a BitmapEvent, its pixels base64.
FRAMES = [
    orjson.dumps(
        {
            "x": 0,
            "y": 16,
            "width": 64,
            "height": 32,
            "bits_per_pixel": 32,
            "compressed": True,
            "data": base64.b64encode(b"\x00\x01\x02\xff" * 5).decode(),
        }
    ),
    orjson.dumps(
        {
            "x": 1216,
            "y": 704,
            "width": 64,
            "height": 16,
            "bits_per_pixel": 16,
            "compressed": False,
            "data": "",
        }
    ),
]


def rdp_session(**overrides):
    fields = {
        "id": RDP_ID,
        "connection_subtype": "rdp",
        "type": "custom",
        "recording_format": "rdp",
        "verb": "connect",
        "script": {"data": ""},
        "review": None,
        "metrics": {
            "event_size": 900,
            "bitmap_count": 2,
            "canvas_width": 1280,
            "canvas_height": 720,
        },
        "event_stream": [
            [0, "h", b64(HANDSHAKE)],
            [2.5, "b", b64(FRAMES[0])],
            [3.75, "b", b64(FRAMES[1])],
        ],
    }
    return session_record(**{**fields, **overrides})


def newer_gateway_session():
    window = {"type": "time_range", "configuration": {"start_time": "9:00", "end_time": "7:30"}}
    return session_record(
        id=NEWER_ID,
        identity_type="sidecar",
        connection="",
        user="hoop@hoop.dev",
        start_date="2026-11-01T12:00:00Z",
        end_date="2026-11-01T12:01:00Z",
        review={
            "id": RID,
            "type": "onetime",
            "status": "EXPIRED",
            "time_window": window,
            "revoke_at": "when approved",
            "created_at": "2026-11-01T11:59:00Z",
            "review_groups_data": [],
        },
        event_stream=[[0.1, "i", b64(b"select 1")], [0.2, "x", b64(b"\x00\xffnew")]],
    )


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    records = [session_record(), rdp_session(), newer_gateway_session()]
    path = ingest_records(records, data_dir=tmp_path_factory.mktemp("data"), synced_at=SYNCED)
    with duckdb.connect(str(path), read_only=True) as con:
        yield con


def test_an_rdp_session_loads_its_handshake_and_bitmap_events_with_exact_bytes_and_times(warehouse):
    rows = warehouse.execute(
        "SELECT seq, event_type, payload, elapsed_seconds, event_time FROM session_events "
        "WHERE session_id = ? ORDER BY seq",
        [RDP_ID],
    ).fetchall()
    assert [(r[0], r[1], bytes(r[2]), r[3]) for r in rows] == [
        (0, "h", HANDSHAKE, 0.0),
        (1, "b", FRAMES[0], 2.5),
        (2, "b", FRAMES[1], 3.75),
    ]
    assert rows[2][4] == datetime(2026, 11, 1, 10, 0, 4, 67600, tzinfo=UTC)
    (fmt, count, status) = warehouse.execute(
        "SELECT recording_format, event_count, stream_status FROM sessions WHERE session_id = ?",
        [RDP_ID],
    ).fetchone()
    assert (fmt, count, status) == ("rdp", 3, "ok")
    assert warehouse.execute("SELECT count(*) FROM rejects").fetchone() == (0,)


def test_the_rdp_frames_view_gives_each_bitmap_update_its_position_and_size(warehouse):
    rows = warehouse.execute(
        "SELECT seq, x, y, width, height, bits_per_pixel, compressed, bitmap_bytes FROM rdp_frames "
        "WHERE session_id = ? ORDER BY seq",
        [RDP_ID],
    ).fetchall()
    assert rows == [(1, 0, 16, 64, 32, 32, True, 20), (2, 1216, 704, 64, 16, 16, False, 0)]


def test_a_newer_gateways_session_loads_with_its_values_as_sent(warehouse):
    session = warehouse.execute(
        "SELECT identity_type, connection, review_status, recording_format FROM sessions WHERE session_id = ?",
        [NEWER_ID],
    ).fetchone()
    assert session == ("sidecar", "", "EXPIRED", None)
    review = warehouse.execute(
        "SELECT status, time_window_start, time_window_end, revoke_at, created_at FROM reviews "
        "WHERE session_id = ?",
        [NEWER_ID],
    ).fetchone()
    assert review == (
        "EXPIRED",
        time(9, 0),
        time(7, 30),
        None,
        datetime(2026, 11, 1, 11, 59, tzinfo=UTC),
    )
    events = warehouse.execute(
        "SELECT event_type, payload FROM session_events WHERE session_id = ? ORDER BY seq",
        [NEWER_ID],
    ).fetchall()
    assert [(t, bytes(p)) for t, p in events] == [("i", b"select 1"), ("x", b"\x00\xffnew")]


def test_unknown_values_and_malformed_fields_are_warning_rows_of_the_day(warehouse):
    rows = warehouse.execute(
        "SELECT start_day, session_id, field, value, kind, seen_at FROM record_warnings ORDER BY field"
    ).fetchall()
    assert rows == [
        (DAY, NEWER_ID, "event_stream.type", '"x"', "unknown_value", SYNCED),
        (DAY, NEWER_ID, "identity_type", '"sidecar"', "unknown_value", SYNCED),
        (DAY, NEWER_ID, "review.revoke_at", '"when approved"', "malformed", SYNCED),
        (DAY, NEWER_ID, "review.status", '"EXPIRED"', "unknown_value", SYNCED),
    ]
    # Every listed session was loaded: none was rejected for what it held.
    assert warehouse.execute(
        "SELECT sessions_listed, sessions_loaded, sessions_rejected, reconciled FROM day_reconciliation"
    ).fetchone() == (3, 3, 0, True)


def test_the_build_counts_the_warnings_for_the_run_summary(tmp_path):
    ingest_records([newer_gateway_session(), rdp_session()], data_dir=tmp_path, synced_at=SYNCED)
    tables, result = build_tables(Settings(data_dir=tmp_path).raw_dir, DAY)
    assert result.warnings == {
        'unknown_value event_stream.type="x"': 1,
        'unknown_value identity_type="sidecar"': 1,
        'unknown_value review.status="EXPIRED"': 1,
        "malformed review.revoke_at": 1,
    }
    assert result.rows["record_warnings"] == 4
    assert tables["record_warnings"].schema.equals(schema.RECORD_WARNINGS.schema)


def test_recording_format_is_null_when_the_gateway_does_not_send_it(tmp_path):
    path = ingest_records(
        [session_record(recording_format=DROP)], data_dir=tmp_path, synced_at=SYNCED
    )
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT recording_format FROM sessions").fetchall() == [(None,)]
        assert con.execute("SELECT count(*) FROM record_warnings").fetchone() == (0,)


@pytest.mark.parametrize("mode", ["hash", "none"])
def test_withheld_output_covers_rdp_handshake_and_bitmaps_but_not_input(tmp_path, mode):
    record = rdp_session(
        event_stream=[
            [0, "h", b64(HANDSHAKE)],
            [1.0, "i", b64(b"typed")],
            [2.5, "b", b64(FRAMES[0])],
            [3.0, "x", b64(b"new kind")],
        ]
    )
    protected = orjson.loads(protect_output(orjson.dumps(record), mode))
    body = orjson.dumps(protected)
    assert b64(HANDSHAKE).encode() not in body and b64(FRAMES[0]).encode() not in body
    path = ingest_records([protected], data_dir=tmp_path, synced_at=SYNCED)
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "SELECT event_type, payload, payload_bytes, payload_sha256 FROM session_events ORDER BY seq"
        ).fetchall()
        frames = con.execute("SELECT x, width FROM rdp_frames").fetchall()
    assert [(t, p, n) for t, p, n, _ in rows] == [
        ("h", None, len(HANDSHAKE)),
        ("i", b"typed", 5),
        ("b", None, len(FRAMES[0])),
        ("x", None, 8),
    ]
    digests = [d for *_, d in rows]
    if mode == "hash":
        assert digests == [
            hashlib.sha256(HANDSHAKE).hexdigest(),
            None,
            hashlib.sha256(FRAMES[0]).hexdigest(),
            hashlib.sha256(b"new kind").hexdigest(),
        ]
    else:
        assert digests == [None] * 4
    assert frames == [(None, None)]  # the position of a withheld frame is not kept either
