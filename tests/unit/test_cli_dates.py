"""Date mistakes on the command line are one clear line naming the date typed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from hoop_sessions.cli.main import main


def test_a_future_end_names_the_date_typed_and_the_latest_day_that_can_be_synced():
    today = datetime.now(UTC).date()
    typed = today + timedelta(days=3)
    result = CliRunner().invoke(
        main,
        ["backfill", "--start", str(today - timedelta(days=2)), "--end", str(typed)],
        env={"HOOP_API_URL": "http://127.0.0.1:9", "HOOP_API_TOKEN": "unused"},
    )
    assert result.exit_code == 2
    assert f"--end {typed} is not over yet" in result.output
    assert f"the latest is yesterday, {today - timedelta(days=1)}" in result.output
    assert "Traceback" not in result.output
