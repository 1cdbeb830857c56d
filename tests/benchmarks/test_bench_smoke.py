"""`make bench` works: the harness runs every contender and measurement at a tiny size.

No speed is asserted (figures on a shared machine vary); the test checks that the harness ran,
that every contender and extra measurement is in the JSON with well-formed figures, and that the
markdown table names them all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTENDERS = ("floor", "lanes floor", "hoop-sessions", "loopback S3", "dlt")


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench") / "latest.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--output", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    return json.loads(out.read_text()), out.with_suffix(".md").read_text()


def test_every_contender_is_reported_with_its_figures(bench_run):
    doc, _ = bench_run
    names = [c["name"] for c in doc["contenders"]]
    for prefix in CONTENDERS:
        assert any(n.startswith(prefix) for n in names), names
    for c in doc["contenders"]:
        if c["name"].startswith("dlt") and c["status"] == "not run":
            assert c["note"], "a contender that did not run says why"
            continue
        assert c["status"] == "ok", c
        assert c["wall_s"] > 0 and c["cpu_s"] > 0 and c["peak_rss_mib"] > 0
        assert c["requests"] > 0 and c["sessions"] > 0
        assert c["requests_per_s"] > 0 and c["sessions_per_s"] > 0


def test_the_floor_and_the_sync_read_the_same_sessions(bench_run):
    doc, _ = bench_run
    by = {c["name"].split(" (")[0]: c for c in doc["contenders"]}
    assert (
        by["floor"]["sessions"]
        == by["lanes floor"]["sessions"]
        == by["hoop-sessions backfill"]["sessions"]
    )
    assert by["floor"]["requests"] == by["lanes floor"]["requests"]
    assert by["hoop-sessions backfill"]["extra"]["wall_ratio_to_floor"] > 0
    assert by["hoop-sessions backfill"]["extra"]["cpu_ratio_to_floor_lanes"] > 0


def test_the_sync_into_loopback_s3_reads_what_the_local_sync_reads_and_is_compared_with_it(
    bench_run,
):
    doc, markdown = bench_run
    by = {c["name"].split(" (")[0]: c for c in doc["contenders"]}
    s3, local = by["loopback S3"], by["hoop-sessions backfill"]
    assert s3["sessions"] == local["sessions"] and s3["extra"]["days"] == local["extra"]["days"]
    assert s3["extra"]["store_objects"] > 0 and s3["extra"]["store_server_cpu_s"] > 0
    for ratio in ("wall_ratio_to_sync", "cpu_ratio_to_sync", "rss_ratio_to_sync"):
        assert s3["extra"][ratio] > 0
    assert {t["target"] for t in doc["targets"]} >= {"s3_wall", "s3_rss"}
    assert "Into loopback S3 against the local sync of the same run" in markdown


def test_extra_measurements_are_reported(bench_run):
    doc, _ = bench_run
    assert doc["nightly"]["status"] == "ok"
    assert doc["nightly"]["extra"]["share_of_a_full_day"] > 0
    assert doc["large_stream"]["status"] == "ok" and doc["large_stream"]["peak_rss_mib"] > 0
    compliance = doc["compliance"]
    assert compliance["status"] == "ok"
    assert compliance["rules"] and all(r["seconds"] >= 0 for r in compliance["rules"])
    assert {t["target"] for t in doc["targets"]} >= {
        "sync_wall",
        "sync_cpu",
        "vs_dlt",
        "compliance",
    }


def test_the_markdown_table_names_every_contender(bench_run):
    doc, markdown = bench_run
    assert (
        markdown.count("| contender | wall s | CPU s | requests/s | sessions/s | peak RSS MiB |")
        == 1
    )
    for c in doc["contenders"]:
        assert f"| {c['name']} |" in markdown
    assert doc["machine"]["nproc"] >= 1 and doc["machine"]["python"]
