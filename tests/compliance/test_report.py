"""The evidence report: content, escaping, self-containment, and how a browser renders it."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

import duckdb
import pytest

from hoop_sessions.compliance.report import (
    ReportError,
    collect,
    render,
    stacked_bars_svg,
    write_report,
)
from hoop_sessions.compliance.rules import load_rules
from hoop_sessions.warehouse import load as warehouse

from .conftest import Load
from .hoop_records import at, session
from .mixed_dataset import DAYS, HOSTILE_TEXT, PERIOD, mixed_records

GENERATED_AT = dt.datetime(2025, 3, 8, 6, 0, tzinfo=dt.UTC)


def report_html(warehouse_path: Path, **kwargs: object) -> str:
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        data = collect(con, start=PERIOD[0], end=PERIOD[1], generated_at=GENERATED_AT, **kwargs)
    return render(data)


@pytest.fixture(scope="module")
def html_text(mixed_data_dir: Path) -> str:
    return report_html(mixed_data_dir / "warehouse.duckdb")


def test_the_report_escapes_values_from_the_warehouse(html_text: str) -> None:
    assert HOSTILE_TEXT not in html_text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in html_text
    assert "<script" not in html_text.lower()


def test_a_hostile_connection_or_environment_name_stays_text_in_tables_and_charts(
    load: Load,
) -> None:
    hostile = '<script>alert(1)</script> "quoted" & co'
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot; &amp; co"
    records = [
        *mixed_records(),
        # A failed production session: its connection name is shown in failed_prod_session's rows.
        session("hostile-connection", start=at("08:00", DAYS[1]), connection=hostile, exit_code=1),
        # Its environment names a series of the sessions-per-day chart and its legend.
        session("hostile-environment", start=at("09:00", DAYS[1]), environment=hostile),
    ]
    html_text = report_html(load(records))

    section = re.search(r'<section id="rule-failed_prod_session">.*?</section>', html_text, re.S)
    legend = re.search(r'<div class="legend">.*?</div>', html_text, re.S)
    assert section and f'<td class="">{escaped}</td>' in section.group()
    assert legend and escaped in legend.group()
    assert f"{escaped}: 1</title>" in html_text  # the chart's tooltip for that day
    assert hostile not in html_text and '"quoted"' not in html_text
    assert "<script" not in html_text.lower()


def test_the_report_needs_no_network_and_runs_no_script(html_text: str) -> None:
    without_svg_namespace = html_text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert not re.search(r"https?://", without_svg_namespace)
    assert not re.search(r"\b(src|href)\s*=\s*\"(?!#)", html_text)  # only in-page anchors
    assert "@import" not in html_text and "url(" not in html_text
    assert "default-src 'none'" in html_text  # the browser enforces it too


def test_the_report_states_the_period_coverage_and_the_missing_day(html_text: str) -> None:
    assert "compliance evidence, 2025-02-27 to 2025-03-03" in html_text
    assert "Generated 2025-03-08 06:00 UTC" in html_text
    assert re.search(r'figure">5</div><div class="label">days in period', html_text)
    assert re.search(r'figure">4</div><div class="label">days synced', html_text)
    assert "have no sync ledger, so their sessions are not in this report: 2025-02-28." in html_text
    assert re.search(r'figure">0</div><div class="label">days not reconciled', html_text)
    assert "fixture@localhost" in html_text  # who the sync's token was


def test_the_report_counts_the_findings_of_every_rule(html_text: str) -> None:
    for rule in load_rules().values():
        if rule.kind == "finding":
            assert re.search(
                rf'href="#rule-{rule.id}">{rule.id}</a>.*?<td class="num">1</td></tr>', html_text
            ), rule.id
            assert f'<section id="rule-{rule.id}">' in html_text


def test_a_day_whose_ledger_does_not_add_up_is_reported_as_not_reconciled(
    writable_warehouse: Path,
) -> None:
    with duckdb.connect(str(writable_warehouse)) as con:
        con.execute(
            "UPDATE sync_windows SET sessions_listed = sessions_listed + 1 WHERE start_day = $day",
            {"day": DAYS[0]},
        )
    html_text = report_html(writable_warehouse)
    assert re.search(r'figure">1</div><div class="label">days not reconciled', html_text)
    assert re.search(r'<tr class="bad"><td class="">2025-03-01</td>', html_text)


def test_without_a_period_the_report_covers_the_first_to_the_last_loaded_day(
    mixed_data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    with duckdb.connect(str(mixed_data_dir / "warehouse.duckdb"), read_only=True) as con:
        data = write_report(con, out=out)
    assert (data.start, data.end) == PERIOD
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed into place


def test_a_warehouse_without_sessions_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    with warehouse.connect(path) as con:
        warehouse.ensure_schema(con)
        with pytest.raises(ReportError, match="holds no sessions: run `hoop-sessions backfill`"):
            write_report(con, out=tmp_path / "r.html")


def test_stacked_bars_draw_one_rectangle_per_non_zero_value_with_a_legend() -> None:
    days = [dt.date(2025, 3, 1), dt.date(2025, 3, 2)]
    svg = stacked_bars_svg(days, {"prod": [3, 0], "<dev>": [1, 2]}, title="t")
    assert svg.count("<rect") == 3
    assert "&lt;dev&gt;" in svg and "<dev>" not in svg


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_chromium_renders_the_charts_and_tables_offline(
    chromium: str, mixed_data_dir: Path, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    page.write_text(report_html(mixed_data_dir / "warehouse.duckdb"), encoding="utf-8")
    screenshot = tmp_path / "report.png"

    dom = _chromium(chromium, tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    _chromium(
        chromium,
        tmp_path / "profile",
        f"--screenshot={screenshot}",
        "--window-size=1280,2400",
        page.as_uri(),
    )

    assert dom.count("<svg") == 3  # sessions per day, approval latency, findings per rule
    assert dom.count("<rect") > 20
    assert len(re.findall(r"<tr[ >]", dom)) > 40
    assert "<script" not in dom.lower()  # the hostile guardrail name stayed text
    assert "&lt;script&gt;alert" in dom
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
