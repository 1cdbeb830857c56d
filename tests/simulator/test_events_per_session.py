"""`events_per_session` / `--events-per-session`: longer streams, same kinds of events.

Everything is read over HTTP from a simulator on loopback, as a sync would see it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from click.testing import CliRunner

from hoop_sessions.simulator import Gateway, SimulatorConfig, serve
from hoop_sessions.simulator.cli import simulate
from hoop_sessions.simulator.timefmt import from_us

from .support import START, client_for, day_window, find_plan, gateway_for, list_all

FULL = {"expand": "event_stream,session_input"}
UNREADABLE = "An internal error occurred: unable to decode the event stream"


def _config(events: int | None, *, days: int = 2, per_day: int = 120) -> SimulatorConfig:
    return SimulatorConfig(
        seed=7, start=START, days=days, sessions_per_day=per_day, events_per_session=events
    )


def _records(client: httpx.Client, days: int) -> list[dict[str, Any]]:
    records = []
    for i in range(days):
        for row in list_all(client, day_window(START + timedelta(days=i))):
            response = client.get(f"/api/sessions/{row['id']}", params=FULL)
            assert response.status_code == 200, response.text
            records.append(response.json())
    return records


def _events(record: dict[str, Any]) -> list[tuple[float, str, bytes]] | None:
    """The decoded events of a record with a readable, non-empty stream; else None."""
    stream = record.get("event_stream")
    if not stream or not isinstance(stream[0], list):
        return None  # no stream, an empty one, or the gateway's "unable to decode" message
    return [(e[0], e[1], base64.b64decode(e[2])) for e in stream]


@pytest.fixture(scope="module")
def thirty() -> Iterator[tuple[Gateway, list[dict[str, Any]]]]:
    with gateway_for(_config(30)) as (gw, client):
        yield gw, _records(client, 2)


@pytest.mark.parametrize("mean", [30, 5])
def test_the_mean_number_of_events_is_near_the_knob_and_each_session_varies(mean: int) -> None:
    with gateway_for(_config(mean)) as (_gw, client):
        records = _records(client, 2)
    counts = [len(events) for r in records if (events := _events(r)) is not None]
    assert len(counts) > 150  # most of the 240 sessions have a small, readable stream
    assert abs(statistics.mean(counts) - mean) <= 0.15 * mean, statistics.mean(counts)
    # Not every session gets exactly `mean` events: a spread on both sides of it.
    assert min(counts) < mean < max(counts)
    assert len(set(counts)) >= (10 if mean == 30 else 5)
    assert statistics.pstdev(counts) > 0.3 * mean


def test_without_the_knob_streams_keep_their_original_length() -> None:
    with gateway_for(_config(None)) as (_gw, client):
        records = _records(client, 2)
    counts = [len(events) for r in records if (events := _events(r)) is not None]
    assert 3.5 <= statistics.mean(counts) <= 6  # about 5 events per stream, as always


def test_every_kind_of_stream_keeps_its_event_types_and_encodings(
    thirty: tuple[Gateway, list[dict[str, Any]]],
) -> None:
    gw, records = thirty
    with client_for(gw) as client:
        seen = _check_kinds(client, records)
    assert seen == {"pgwire", "rdp", "http", "shell", "sql"}


def _check_kinds(client: httpx.Client, records: list[dict[str, Any]]) -> set[str]:
    """Check each readable stream against its kind's rules; the kinds seen."""
    seen: set[str] = set()
    for r in records:
        events = _events(r)
        if events is None:
            continue
        types = {t for _, t, _ in events}
        elapsed = [e for e, _, _ in events]
        assert elapsed == sorted(elapsed)
        name = r["connection"]
        if name.startswith("pg-") and r["connection_subtype"] == "postgres":
            seen.add("pgwire")
            # Raw Postgres protocol from the client only; each query is found once.
            assert types == {"i"}
            packets = [p for _, _, p in events[1:]]
            assert all(p[:1] in b"QPEX" for p in packets)
            queries = client.get(
                f"/api/sessions/{r['id']}", params={**FULL, "event_stream": "raw-queries"}
            ).json()["event_stream"]
            assert len(queries or []) == sum(p[:1] in (b"Q", b"P") for p in packets)
        elif name.startswith("rdp-"):
            seen.add("rdp")
            # The RDP recorder's shape: a handshake at 0, then JSON bitmap updates.
            assert events[0][:2] == (0, "h") and types == {"h", "b"}
            bitmap = orjson.loads(events[1][2])
            assert list(bitmap) == [
                "x",
                "y",
                "width",
                "height",
                "bits_per_pixel",
                "compressed",
                "data",
            ]
        elif name.startswith("http-"):
            seen.add("http")
            _check_http(events)
        elif name.startswith(("ssh-", "k8s-", "bash-")):
            seen.add("shell")
            assert events[0][1] == "o" and events[0][2].endswith(b"\x1b[0m$ ")  # a prompt
            assert types <= {"i", "o", "e"}
        else:
            seen.add("sql")
            assert types <= {"i", "o", "e"} and events[0][1] == "i"
    return seen


def _check_http(events: list[tuple[float, str, bytes]]) -> None:
    """Requests (`i`) alternate with responses (`o`); a chunked response parses as one."""
    exchanges: list[tuple[bytes, list[bytes]]] = []
    for _, kind, payload in events:
        if kind == "i":
            exchanges.append((payload, []))
        else:
            assert kind == "o" and exchanges
            exchanges[-1][1].append(payload)
    for _request, parts in exchanges:
        assert parts and parts[0].startswith(b"HTTP/1.1 ")
        if b"Transfer-Encoding: chunked" not in parts[0]:
            assert len(parts) == 1
            continue
        body = b""
        for part in parts[1:]:
            size, _, rest = part.partition(b"\r\n")
            data = rest[: int(size, 16)]
            assert rest[len(data) : len(data) + 2] == b"\r\n"
            body += data
        assert parts[-1].endswith(b"\r\n0\r\n\r\n")
        if b"application/json" in parts[0]:
            orjson.loads(body)


def test_exec_scripts_grow_with_their_stream(
    thirty: tuple[Gateway, list[dict[str, Any]]],
) -> None:
    _gw, records = thirty
    scripts = [r["script"]["data"] for r in records if r["verb"] == "exec"]
    assert any(s.count("\n") >= 3 for s in scripts)  # several commands or statements
    shell = [
        (r, e)
        for r in records
        if r["verb"] == "exec"
        and r["connection"].startswith(("ssh-", "k8s-", "bash-"))
        and (e := _events(r)) is not None
        and len(e) >= 3 * (r["script"]["data"].count("\n") + 1) + 1
    ]
    assert shell
    for record, events in shell:  # the script's commands are what was typed, in order
        typed = [p.decode().removesuffix("\r") for _, t, p in events if t == "i"]
        assert typed == record["script"]["data"].split("\n")


def test_streams_still_grow_by_flushes_while_the_session_runs() -> None:
    with serve(_config(30, days=1)) as gw, client_for(gw) as client:
        plan = find_plan(
            gw.dataset,
            lambda p, s: (
                p.review is None
                and p.verb == "connect"
                and p.stream.kind == "shell"
                and p.connect_us is not None
                and p.end_us is not None
                and p.end_us - p.connect_us > 20 * 60 * 10**6
                and p.stream.events >= 20
            ),
        )
        assert plan.connect_us is not None and plan.end_us is not None
        lengths = []
        for fraction in (0.25, 0.5, 0.75, 1.0):
            gw.set_now(from_us(plan.connect_us + int((plan.end_us - plan.connect_us) * fraction)))
            record = client.get(f"/api/sessions/{plan.id}", params=FULL).json()
            lengths.append(len(record["event_stream"]))
        assert record["status"] == "done"
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1] == plan.stream.events


def _start_cli(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "hoop_sessions.simulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip().removeprefix("listening on ")


def _bodies(client: httpx.Client, days: int) -> list[bytes]:
    """Every list page and every get body (in two stream renderings), byte for byte."""
    bodies = []
    for i in range(days):
        params = {**day_window(START + timedelta(days=i)), "limit": "100"}
        page = client.get("/api/sessions", params=params)
        bodies.append(page.content)
        for row in page.json()["data"]:
            for extra in ({}, {"event_stream": "base64"}):
                bodies.append(
                    client.get(f"/api/sessions/{row['id']}", params={**FULL, **extra}).content
                )
    return bodies


def test_the_same_inputs_give_the_same_bodies_in_another_process() -> None:
    cfg = _config(30, per_day=60)
    args = ["--token", cfg.token, "--seed", "7", "--start", str(START), "--days", "2"]
    process, url = _start_cli([*args, "--sessions-per-day", "60", "--events-per-session", "30"])
    try:
        headers = {"Authorization": f"Bearer {cfg.token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
            from_cli = _bodies(client, 2)
        with gateway_for(cfg) as (_gw, client):
            in_process = _bodies(client, 2)
        with gateway_for(_config(31, per_day=60)) as (_gw, client):
            other_mean = _bodies(client, 2)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
    assert len(from_cli) >= 2 + 2 * 120  # a window [D, D+1] also holds D+1 00:00:00
    assert from_cli == in_process
    assert other_mean[0] != from_cli[0]  # the knob is part of the data (event_size differs)


# sha256 of `_bodies` of `_config(None, per_day=40)`: without the knob, the data must not change
# by a single byte. (Should the default data ever be changed on purpose, this is the value to
# update; it last changed when the data gained RDP recordings, JIT-covered sessions, one-time
# revoke_at, credential-expiry and restart endings.)
DEFAULT_DIGEST = "e74fd98e5bf9fa390ae5c71ae27071538ffe295f7de546220630e38b93fc9368"


def _default_digest() -> str:
    with gateway_for(SimulatorConfig(seed=7, start=START, days=2, sessions_per_day=40)) as (
        _gw,
        client,
    ):
        return hashlib.sha256(b"".join(_bodies(client, 2))).hexdigest()


def test_without_the_knob_the_data_is_byte_for_byte_what_it_was() -> None:
    assert SimulatorConfig().events_per_session is None
    assert _default_digest() == DEFAULT_DIGEST


@pytest.mark.parametrize("value", [0, -3, 10_001])
def test_a_count_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(
        ValueError, match=r"events_per_session must be an integer within 1\.\.10000"
    ):
        SimulatorConfig(events_per_session=value)
    result = CliRunner().invoke(
        simulate, ["--events-per-session", str(value), "--export", "unused.jsonl"]
    )
    assert result.exit_code == 2
    assert "Invalid value for '--events-per-session'" in result.output
    assert "1<=x<=10000" in result.output


def _not_an_int() -> Any:
    return 2.5


def test_the_bounds_are_accepted_and_the_option_is_listed() -> None:
    assert SimulatorConfig(events_per_session=1).events_per_session == 1
    assert SimulatorConfig(events_per_session=10_000).events_per_session == 10_000
    with pytest.raises(ValueError, match="events_per_session"):
        SimulatorConfig(events_per_session=_not_an_int())
    help_text = CliRunner().invoke(simulate, ["--help"]).output
    assert "--events-per-session" in help_text
