"""`make dev`: the devserver starts the simulator and `dagster dev -w workspace.yaml`; the UI's
GraphQL API then shows the hoop assets, their checks and the nightly schedule."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pipelines.test_definitions import EXPECTED_ASSETS, EXPECTED_CHECKS

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 150


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graphql(port: int, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


def wait_until_serving(port: int, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    raise AssertionError("the webserver did not answer in time:\n" + log.read_text()[-3000:])


@pytest.fixture
def devserver(tmp_path: Path) -> Iterator[tuple[int, Path, Path]]:
    """``python -m hoop_sessions.cli.devserver`` on a free loopback port, without HOOP_API_URL."""
    port = free_port()
    log = tmp_path / "devserver.log"
    home = tmp_path / "dagster_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOP_")}
    env.update(DAGSTER_HOME=str(home), HOOP_DATA_DIR=str(tmp_path / "data"))
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hoop_sessions.cli.devserver",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: dagster dev, webserver, daemon
        )
    try:
        wait_until_serving(port, process, log)
        yield port, home, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        time.sleep(1)
        # Anything of the group left behind (dagster dev waits for its children only so long).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def test_make_dev_serves_the_hoop_assets_checks_and_schedule_to_the_ui(devserver) -> None:
    port, home, log = devserver

    assets = graphql(
        port,
        "{ assetNodes { assetKey { path } groupName isPartitioned"
        "   assetChecksOrError { ... on AssetChecks { checks { name } } } } }",
    )["assetNodes"]
    repositories = graphql(
        port,
        "{ repositoriesOrError { ... on RepositoryConnection { nodes { location { name }"
        "   schedules { name cronSchedule executionTimezone scheduleState { status } } } } } }",
    )["repositoriesOrError"]["nodes"]
    pools = graphql(port, "{ instance { poolConfig { defaultPoolLimit poolGranularity } } }")

    keys = {"/".join(a["assetKey"]["path"]) for a in assets}
    assert keys == set(EXPECTED_ASSETS)
    checks = {
        "/".join(a["assetKey"]["path"]) + ":" + c["name"]
        for a in assets
        for c in (a["assetChecksOrError"].get("checks") or [])
    }
    assert checks == set(EXPECTED_CHECKS)
    assert [r["location"]["name"] for r in repositories] == ["hoop_sessions"]
    assert repositories[0]["schedules"] == [
        {
            "name": "hoop_nightly",
            "cronSchedule": "15 1 * * *",
            "executionTimezone": "UTC",
            "scheduleState": {"status": "STOPPED"},
        }
    ]
    # A new DAGSTER_HOME gets one slot per pool: one writer of warehouse.duckdb at a time.
    assert pools["instance"]["poolConfig"] == {"defaultPoolLimit": 1, "poolGranularity": "op"}
    assert (home / "dagster.yaml").is_file()
    assert "enabled: false" in (home / "dagster.yaml").read_text().split("telemetry:")[1]
    text = log.read_text()
    # Without HOOP_API_URL the simulator runs; the command says its URL, its demo token and the
    # DAGSTER_HOME, as one export line another shell can paste for the README's dagster commands.
    url = re.search(r"listens on (http://127\.0\.0\.1:\d+)", text)
    assert url, text[-2000:]
    exported = re.search(
        r"export DAGSTER_HOME=(\S+) HOOP_DATA_DIR=\S+ HOOP_API_URL=(\S+) HOOP_API_TOKEN=(\S+)", text
    )
    assert exported and exported.group(1) == str(home) and exported.group(2) == url.group(1)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url.group(1) + "/api/userinfo", timeout=10)
    assert refused.value.code == 401
    request = urllib.request.Request(
        url.group(1) + "/api/userinfo", headers={"Authorization": f"Bearer {exported.group(3)}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
    # No warning of Dagster's about this project's definitions (beta parameters, deprecations).
    assert "BetaWarning" not in text and "DeprecationWarning" not in text
