"""HOOP_STORE_OUTPUT keeps output payloads whole, as digests, or not at all; input always stays."""

from __future__ import annotations

import base64
import gzip
import hashlib
from datetime import timedelta

import duckdb
import pytest

from hoop_sessions.config import Settings
from hoop_sessions.errors import ConfigError
from hoop_sessions.simulator import Dataset
from hoop_sessions.sync.run import sync_days
from tests.conftest import FIRST_DAY, NOW, settings_for


def truth_events(gateway) -> dict[tuple[str, int], tuple[str, bytes]]:
    ds = Dataset(gateway.config)
    out = {}
    for sid in ds.session_ids(FIRST_DAY, now=NOW):
        stream = ds.record(sid, now=NOW).get("event_stream")
        if isinstance(stream, list) and not (len(stream) == 1 and isinstance(stream[0], str)):
            for seq, (_, kind, data) in enumerate(stream):
                out[(sid, seq)] = (kind, base64.b64decode(data))
    return out


def every_file_bytes(root) -> bytes:
    blob = b""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blob += gzip.decompress(data) if path.suffix == ".gz" else data
    return blob


@pytest.mark.parametrize("mode", ["hash", "none"])
def test_output_payloads_are_kept_only_as_the_mode_says_and_input_always(
    gateway_factory, tmp_path, mode
):
    gateway = gateway_factory(days=1, sessions_per_day=40, seed=17)
    settings = settings_for(gateway, tmp_path, store_output=mode)
    assert sync_days(settings, [FIRST_DAY], now=NOW).ok
    truth = truth_events(gateway)
    outputs = [(k, p) for k, (kind, p) in truth.items() if kind in "oe" and len(p) >= 16]
    inputs = [(k, p) for k, (kind, p) in truth.items() if kind == "i" and len(p) >= 16]
    assert outputs and inputs
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = {
            (r[0], r[1]): r[2:]
            for r in con.execute(
                "SELECT session_id, seq, event_type, payload, payload_bytes, payload_sha256 FROM session_events"
            ).fetchall()
        }
    for key, payload in outputs:
        _, stored, size, digest = rows[key]
        assert stored is None and size == len(payload)
        assert digest == (hashlib.sha256(payload).hexdigest() if mode == "hash" else None)
    for key, payload in inputs:
        assert rows[key][1] == payload and rows[key][3] is None
    on_disk = every_file_bytes(tmp_path / "raw") + every_file_bytes(tmp_path / "lake")
    leaked = [k for k, p in outputs if p in on_disk or base64.b64encode(p) in on_disk]
    assert leaked == []


def test_full_keeps_the_exact_output_bytes(gateway_factory, tmp_path):
    gateway = gateway_factory(days=1, sessions_per_day=20, seed=17)
    assert sync_days(settings_for(gateway, tmp_path), [FIRST_DAY], now=NOW).ok
    truth = truth_events(gateway)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = {
            (r[0], r[1]): r[2]
            for r in con.execute(
                "SELECT session_id, seq, payload FROM session_events WHERE payload_sha256 IS NULL"
            ).fetchall()
        }
    assert rows == {k: p for k, (_, p) in truth.items()}


def test_an_unknown_mode_is_refused():
    with pytest.raises(ConfigError, match="HOOP_STORE_OUTPUT must be one of full, hash, none"):
        Settings.from_env({"HOOP_STORE_OUTPUT": "encrypt"})


def test_a_warehouse_from_before_the_column_existed_is_upgraded(gateway_factory, tmp_path):
    gateway = gateway_factory(days=2, sessions_per_day=10, seed=17)
    settings = settings_for(gateway, tmp_path)
    assert sync_days(settings, [FIRST_DAY], now=NOW).ok
    with duckdb.connect(str(settings.load_path)) as con:  # the copy that loads write
        con.execute("ALTER TABLE session_events DROP COLUMN payload_sha256")
    assert sync_days(settings, [FIRST_DAY + timedelta(days=1)], now=NOW).ok


@pytest.mark.parametrize(
    ("before", "after"), [("full", "hash"), ("full", "none"), ("hash", "none")]
)
def test_a_switch_to_a_stricter_mode_applies_to_bodies_copied_forward_too(
    gateway_factory, tmp_path, before, after
):
    """Sessions final and unchanged are copied from the previous raw file, not read again: they
    are reduced under the new mode as they are copied, and the day's rows follow."""
    gateway = gateway_factory(days=1, sessions_per_day=40, seed=17)
    assert sync_days(settings_for(gateway, tmp_path, store_output=before), [FIRST_DAY], now=NOW).ok
    gateway.reset_stats()
    again = sync_days(settings_for(gateway, tmp_path, store_output=after), [FIRST_DAY], now=NOW)
    assert again.ok
    assert again.days[0].extract.reused > 0, "the test must copy bodies forward"
    assert again.days[0].build is not None, "the day must be rebuilt under the new mode"
    truth = truth_events(gateway)
    outputs = [(k, p) for k, (kind, p) in truth.items() if kind in "oe" and len(p) >= 16]
    assert outputs
    on_disk = every_file_bytes(tmp_path / "raw") + every_file_bytes(tmp_path / "lake")
    leaked = [k for k, p in outputs if p in on_disk or base64.b64encode(p) in on_disk]
    assert leaked == []
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = {
            (r[0], r[1]): r[2:]
            for r in con.execute(
                "SELECT session_id, seq, payload, payload_bytes, payload_sha256 FROM session_events"
            ).fetchall()
        }
    for key, payload in outputs:
        stored, size, digest = rows[key]
        assert stored is None and size == len(payload)
        assert digest == (hashlib.sha256(payload).hexdigest() if after == "hash" else None)
