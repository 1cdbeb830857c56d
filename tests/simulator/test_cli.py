"""`hoop-sessions simulate` and `python -m hoop_sessions.simulator`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
from click.testing import CliRunner

from hoop_sessions.simulator.cli import simulate

SMALL_ARGS = ["--start", "2026-11-01", "--days", "2", "--sessions-per-day", "15"]


def _start(args: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "hoop_sessions.simulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    return process, line


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    assert process.wait(timeout=10) == 0


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(simulate, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--port",
        "--host",
        "--token",
        "--seed",
        "--start",
        "--days",
        "--sessions-per-day",
        "--now",
        "--latency-ms",
        "--fault-rate",
        "--legacy-gateway",
        "--export",
    ):
        assert option in result.output


def test_the_subprocess_prints_one_listening_line_and_serves() -> None:
    process, line = _start(["--token", "t0k", *SMALL_ARGS])
    try:
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        response = httpx.get(url + "/api/sessions", headers={"Authorization": "Bearer t0k"})
        assert response.status_code == 200 and response.json()["total"] == 30
    finally:
        _stop(process)


def test_without_a_token_it_takes_hoop_api_token_or_generates_and_prints_one() -> None:
    process, line = _start(SMALL_ARGS, env={"HOOP_API_TOKEN": "from-env"})
    try:
        url = line.removeprefix("listening on ")
        assert (
            httpx.get(
                url + "/api/userinfo", headers={"Authorization": "Bearer from-env"}
            ).status_code
            == 200
        )
    finally:
        _stop(process)
    env = {k: v for k, v in os.environ.items() if k != "HOOP_API_TOKEN"}
    process = subprocess.Popen(
        [sys.executable, "-m", "hoop_sessions.simulator", "--port", "0", *SMALL_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        url = process.stdout.readline().strip().removeprefix("listening on ")
        token = process.stderr.readline().strip().removeprefix("demo token: ")
        assert token.startswith("hpk_demo_")
        assert (
            httpx.get(
                url + "/api/userinfo", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 200
        )
    finally:
        _stop(process)


def test_export_writes_the_truth_and_exits(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    result = CliRunner().invoke(
        simulate,
        ["--token", "x", *SMALL_ARGS, "--now", "2026-11-02T12:00:00", "--export", str(path)],
    )
    assert result.exit_code == 0, result.output
    lines = path.read_bytes().splitlines()
    assert result.output == f"wrote {len(lines)} sessions to {path}\n"
    assert 15 < len(lines) < 30
    assert all(orjson.loads(line)["start_date"] <= "2026-11-02T12" for line in lines)


def test_cli_knobs_reach_the_gateway() -> None:
    process, line = _start(
        ["--token", "t", *SMALL_ARGS, "--legacy-gateway", "--as-user", "ben.okafor@acme.example"]
    )
    try:
        url = line.removeprefix("listening on ")
        headers = {"Authorization": "Bearer t"}
        page = httpx.get(url + "/api/sessions", headers=headers).json()
        assert "total_is_capped" not in page  # legacy list
        assert (
            httpx.get(url + "/api/userinfo", headers=headers).json()["email"]
            == "ben.okafor@acme.example"
        )
    finally:
        _stop(process)


def test_a_bad_day_size_is_refused() -> None:
    result = CliRunner().invoke(simulate, ["--day-size", "2026-11-01", "--export", "unused.jsonl"])
    assert result.exit_code == 2
    assert "expected YYYY-MM-DD=N" in result.output
