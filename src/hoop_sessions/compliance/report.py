"""The evidence report: one self-contained HTML file for an audit period.

It states the period and how complete the data is (days synced, the sync ledger reconciled,
who the sync's token was), then what every compliance rule found, with charts and the evidence
rows. The file opens offline: CSS is inlined, the charts are SVG drawn here, nothing is fetched
and nothing runs. Every value from the warehouse is HTML-escaped: session data is user input
(connection names, guardrail rule names, typed text) and must not become markup.

The queries behind the coverage section and the charts are SQL files in ``report_assets/``; the
findings come from the rules themselves (``compliance.run_rule``), run for the period.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import duckdb

from hoop_sessions.compliance.rules import Rule, RuleResult, bind_each, load_rules, run_rule
from hoop_sessions.errors import HoopSessionsError
from hoop_sessions.tempfiles import aside

MAX_ROWS_PER_RULE = 500
# Okabe-Ito: distinguishable with the common colour-vision deficiencies, and in greyscale print.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")
SEVERITY_COLOURS = {"high": "#b42318", "medium": "#b54708", "low": "#175cd3", "info": "#475467"}


class ReportError(HoopSessionsError):
    """The report cannot be made (e.g. the warehouse holds no sessions)."""


@dataclass(frozen=True)
class DayCoverage:
    """One UTC day of the period: its sync ledger and what the warehouse holds."""

    day: dt.date
    synced: bool
    sessions_listed: int
    sessions_loaded: int
    sessions_rejected: int
    sessions_in_warehouse: int
    sessions_not_final: int
    reject_rows: int
    synced_at: dt.datetime | None
    reconciled: bool


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, gathered in one read of the warehouse."""

    start: dt.date
    end: dt.date
    generated_at: dt.datetime
    params: Mapping[str, object]
    days: tuple[DayCoverage, ...]
    principals: tuple[tuple[Any, ...], ...]
    sessions_per_day: tuple[tuple[dt.date, str, int], ...]
    latency: tuple[tuple[Any, ...], ...]
    results: tuple[RuleResult, ...]

    @property
    def days_without_data(self) -> tuple[dt.date, ...]:
        """The days of the period that no sync has read (no sync ledger), so not in the report."""
        return tuple(d.day for d in self.days if not d.synced)

    @property
    def findings(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if r.rule.kind == "finding")

    @property
    def summaries(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if r.rule.kind == "summary")


def _asset(name: str) -> str:
    return (resources.files("hoop_sessions.compliance") / "report_assets" / name).read_text(
        encoding="utf-8"
    )


def _query(
    con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, object]
) -> list[tuple[Any, ...]]:
    return con.execute(_asset(name), dict(params)).fetchall()


def default_period(con: duckdb.DuckDBPyConnection) -> tuple[dt.date, dt.date]:
    """The first and last UTC start day in the warehouse."""
    rows = _query(con, "period_bounds.sql", {})
    first, last = rows[0] if rows else (None, None)
    if first is None or last is None:
        raise ReportError("the warehouse holds no sessions: run `hoop-sessions backfill` first")
    return first, last


def collect(
    con: duckdb.DuckDBPyConnection,
    *,
    start: dt.date,
    end: dt.date,
    params: Mapping[str, object] | None = None,
    rules: Mapping[str, Rule] | None = None,
    generated_at: dt.datetime | None = None,
) -> ReportData:
    """Run every rule for the period and read the coverage and chart data."""
    if end < start:
        raise ReportError(f"the period ends ({end}) before it starts ({start})")
    rules = rules if rules is not None else load_rules()
    shared = {**(params or {}), "start": start, "end": end}
    bound = bind_each(rules.values(), shared)
    results = tuple(run_rule(con, rule, bound[rule.id]) for rule in rules.values())
    period = {"start": start, "end": end}
    env_tag = next((b["env_tag"] for b in bound.values() if "env_tag" in b), "environment")
    days = tuple(DayCoverage(*row) for row in _query(con, "coverage_days.sql", period))
    return ReportData(
        start=start,
        end=end,
        generated_at=generated_at or dt.datetime.now(dt.UTC),
        params=shared,
        days=days,
        principals=tuple(_query(con, "sync_principals.sql", period)),
        sessions_per_day=tuple(
            (d, str(e), int(n))
            for d, e, n in _query(con, "sessions_per_day.sql", {**period, "env_tag": env_tag})
        ),
        latency=tuple(_query(con, "approval_latency.sql", period)),
        results=results,
    )


def write_report(
    con: duckdb.DuckDBPyConnection,
    *,
    out: Path,
    start: dt.date | None = None,
    end: dt.date | None = None,
    params: Mapping[str, object] | None = None,
    max_rows: int = MAX_ROWS_PER_RULE,
) -> ReportData:
    """Collect and render the report into ``out`` (atomically: a reader never sees half a file).

    Without ``start``/``end`` the period is the warehouse's first and last day.
    """
    if start is None or end is None:
        first, last = default_period(con)
        start, end = start or first, end or last
    data = collect(con, start=start, end=end, params=params)
    document = render(data, max_rows=max_rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    # A sibling temporary file, then a rename: same file system, so the rename is atomic. The
    # report holds session data (who, where, what they typed), like the data directory, whose
    # files are the owner's only: created 0600, whatever the umask; sharing it is a choice.
    tmp = aside(out)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an older file of the same name keeps its mode through O_TRUNC
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(document)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return data


# --- values as text -----------------------------------------------------------------------


def format_value(value: object) -> str:
    """A warehouse value as plain text, the same in the report, tables and CSV.

    Times are shown in UTC whatever the session time zone; lists and maps as JSON.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float):
        # 15 significant digits: exact for every stored count or duration, no binary noise.
        return format(value, ".15g")
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=format_value, ensure_ascii=False)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _e(value: object) -> str:
    """Escaped for HTML text and attribute values."""
    return html.escape(value if isinstance(value, str) else format_value(value), quote=True)


# --- SVG charts ---------------------------------------------------------------------------


def _nice_ceiling(value: float) -> tuple[float, float]:
    """An axis maximum at or above ``value`` and a tick step: 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1.0, 1.0
    raw_step = value / 4
    power = 10 ** math.floor(math.log10(raw_step))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw_step)
    step = max(step, 1.0)
    return step * math.ceil(value / step), step


def _svg_open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
    ]


def _y_axis(
    parts: list[str],
    *,
    top: float,
    left: float,
    right: float,
    plot_h: float,
    y_max: float,
    step: float,
) -> None:
    tick = 0.0
    while tick <= y_max + 1e-9:
        y = top + plot_h - plot_h * tick / y_max
        parts.append(f'<line class="axis" x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>'
        )
        tick += step


def stacked_bars_svg(
    days: Sequence[dt.date], series: Mapping[str, Sequence[int]], *, title: str
) -> str:
    """Vertical bars per day, stacked by series (environment), with a y axis."""
    width, height, left, top, bottom = 760, 260, 44, 12, 40
    plot_w, plot_h = width - left - 12, height - top - bottom
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    y_max, step = _nice_ceiling(max(totals, default=0))
    parts = _svg_open(width, height, title)
    _y_axis(parts, top=top, left=left, right=width - 12, plot_h=plot_h, y_max=y_max, step=step)
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.7, 1.0)
    label_every = max(1, math.ceil(len(days) / 12))
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar) / 2
        y = float(top + plot_h)
        for (name, values), colour in zip(series.items(), PALETTE * 4, strict=False):
            if values[i]:
                h = plot_h * values[i] / y_max
                y -= h
                parts.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                    f'fill="{colour}"><title>{_e(day)} {_e(name)}: {values[i]}</title></rect>'
                )
        if i % label_every == 0:
            parts.append(
                f'<text class="tick" x="{x + bar / 2:.1f}" y="{height - bottom + 16}" '
                f'text-anchor="middle">{_e(day.strftime("%m-%d"))}</text>'
            )
    parts.append("</svg>")
    legend = "".join(
        f'<span><span class="swatch" style="background:{colour}"></span>{_e(name)}</span>'
        for name, colour in zip(series, PALETTE * 4, strict=False)
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def columns_svg(labels: Sequence[str], counts: Sequence[int], *, title: str) -> str:
    """A histogram: one labelled column per bucket, the count above it."""
    width, height, left, top, bottom = 760, 240, 44, 18, 36
    plot_w, plot_h = width - left - 12, height - top - bottom
    y_max, step = _nice_ceiling(max(counts, default=0))
    parts = _svg_open(width, height, title)
    _y_axis(parts, top=top, left=left, right=width - 12, plot_h=plot_h, y_max=y_max, step=step)
    slot = plot_w / max(len(labels), 1)
    for i, (label, count) in enumerate(zip(labels, counts, strict=True)):
        h = plot_h * count / y_max
        x, y = left + i * slot + slot * 0.15, top + plot_h - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
            f'fill="{PALETTE[0]}"><title>{_e(label)}: {count}</title></rect>'
        )
        parts.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
            f'font-size="11">{count}</text>'
        )
        parts.append(
            f'<text class="tick" x="{x + slot * 0.35:.1f}" y="{height - bottom + 16}" '
            f'text-anchor="middle">{_e(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def hbars_svg(rows: Sequence[tuple[str, int, str]], *, title: str) -> str:
    """Horizontal bars (label, count, colour), one per row, count at the end of the bar."""
    row_h, left, right = 22, 210, 50
    width = 760
    height = max(row_h * len(rows) + 10, 40)
    top_count = max((count for _, count, _ in rows), default=0) or 1
    parts = _svg_open(width, height, title)
    for i, (label, count, colour) in enumerate(rows):
        y = 5 + i * row_h
        w = (width - left - right) * count / top_count
        parts.append(
            f'<text x="{left - 8}" y="{y + 14}" text-anchor="end" font-size="12">{_e(label)}</text>'
        )
        parts.append(
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{colour}">'
            f"<title>{_e(label)}: {count}</title></rect>"
        )
        parts.append(f'<text x="{left + w + 6:.1f}" y="{y + 14}" font-size="12">{count}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- HTML ---------------------------------------------------------------------------------


def _table(
    columns: Sequence[str], rows: Sequence[Sequence[object]], *, bad: Sequence[bool] | None = None
) -> str:
    numeric = [
        all(
            isinstance(r[i], int | float | Decimal) and not isinstance(r[i], bool)
            for r in rows
            if r[i] is not None
        )
        and any(r[i] is not None for r in rows)
        for i in range(len(columns))
    ]
    mono = [c.endswith("_id") for c in columns]
    # A column name may break after an underscore (and only there): a wide table's header row
    # no longer sets its width.
    names = [_e(c).replace("_", "_<wbr>") for c in columns]
    head = "".join(
        f'<th class="num">{names[i]}</th>' if numeric[i] else f"<th>{names[i]}</th>"
        for i in range(len(columns))
    )
    body = []
    for n, row in enumerate(rows):
        cells = "".join(
            f'<td class="{"num" if numeric[i] else "mono" if mono[i] else ""}">{_e(v)}</td>'
            for i, v in enumerate(row)
        )
        marker = ' class="bad"' if bad and bad[n] else ""
        body.append(f"<tr{marker}>{cells}</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _badge(severity: str) -> str:
    return f'<span class="badge {_e(severity)}">{_e(severity)}</span>'


def _card(label: str, figure: object, tone: str = "") -> str:
    return (
        f'<div class="card {tone}"><div class="figure">{_e(figure)}</div>'
        f'<div class="label">{_e(label)}</div></div>'
    )


def _coverage(data: ReportData) -> str:
    synced = [d for d in data.days if d.synced]
    missing = data.days_without_data
    unreconciled = [d for d in synced if not d.reconciled]
    listed = sum(d.sessions_listed for d in synced)
    loaded = sum(d.sessions_loaded for d in synced)
    rejected = sum(d.sessions_rejected for d in synced)
    parts = [
        '<h2 id="coverage">Coverage</h2>',
        '<p class="muted">A day counts as synced when the sync ledger (<code>sync_windows</code>) '
        "holds it. It reconciles when every session hoop listed was loaded or rejected "
        "(listed = loaded + rejected) and the warehouse holds the loaded ones.</p>",
        '<div class="cards">',
        _card("days in period", len(data.days)),
        _card("days synced", len(synced), "good" if not missing else "alert"),
        _card("sessions listed", listed),
        _card("sessions loaded", loaded),
        _card("sessions rejected", rejected, "alert" if rejected else ""),
        _card(
            "days not reconciled",
            len(unreconciled),
            "alert" if unreconciled else "good",
        ),
        "</div>",
    ]
    if missing:
        parts.append(
            f'<p><span class="badge high">gap</span> {len(missing)} day(s) of the period have no '
            f"sync ledger, so their sessions are not in this report: "
            f"{_e(', '.join(d.isoformat() for d in missing))}.</p>"
        )
    if data.principals:
        parts.append("<h3>Sync identity</h3>")
        parts.append(
            _table(("principal", "api_url", "days", "first_day", "last_day"), data.principals)
        )
    parts.append("<details><summary>Per-day ledger</summary>")
    columns = (
        "day",
        "synced",
        "sessions_listed",
        "sessions_loaded",
        "sessions_rejected",
        "sessions_in_warehouse",
        "sessions_not_final",
        "reject_rows",
        "synced_at",
        "reconciled",
    )
    rows = [
        (
            d.day,
            d.synced,
            d.sessions_listed,
            d.sessions_loaded,
            d.sessions_rejected,
            d.sessions_in_warehouse,
            d.sessions_not_final,
            d.reject_rows,
            d.synced_at,
            d.reconciled,
        )
        for d in data.days
    ]
    parts.append(_table(columns, rows, bad=[not d.reconciled for d in data.days]))
    parts.append("</details>")
    return "\n".join(parts)


def _charts(data: ReportData) -> str:
    days = [d.day for d in data.days]
    index = {day: i for i, day in enumerate(days)}
    totals: dict[str, int] = {}
    for _, env, n in data.sessions_per_day:
        totals[env] = totals.get(env, 0) + n
    series = {env: [0] * len(days) for env in sorted(totals, key=lambda e: (-totals[e], e))}
    for day, env, n in data.sessions_per_day:
        series[env][index[day]] += n

    labels = [str(row[0]) for row in data.latency]
    counts = [int(row[1]) for row in data.latency]
    approvals, p50, p90, p99, longest = data.latency[0][2:] if data.latency else (0,) + (None,) * 4
    stats = (
        f"{approvals} approvals; p50 {_minutes(p50)}, p90 {_minutes(p90)}, "
        f"p99 {_minutes(p99)}, max {_minutes(longest)}"
        if approvals
        else "no approvals in the period"
    )
    per_rule = [(r.rule.id, len(r.rows), SEVERITY_COLOURS[r.rule.severity]) for r in data.findings]
    return "\n".join(
        [
            '<h2 id="charts">Charts</h2><div class="charts">',
            "<figure><figcaption>Sessions per day by environment</figcaption>",
            stacked_bars_svg(days, series, title="Sessions per UTC day, stacked by environment"),
            "</figure>",
            "<figure><figcaption>Approval latency (review requested to group approval)"
            "</figcaption>",
            columns_svg(labels, counts, title="Approvals by latency bucket"),
            f'<p class="note">{_e(stats)}</p></figure>',
            "<figure><figcaption>Findings per rule</figcaption>",
            hbars_svg(per_rule, title="Findings per rule, coloured by severity"),
            "</figure></div>",
        ]
    )


def _minutes(value: object) -> str:
    if value is None:
        return "-"
    minutes = float(value)  # type: ignore[arg-type]
    return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _rule_overview(data: ReportData) -> str:
    rows = []
    for result in data.findings:
        rule = result.rule
        count = len(result.rows)
        rows.append(
            f'<tr class="{"bad" if count and rule.severity == "high" else ""}">'
            f'<td><a href="#rule-{_e(rule.id)}">{_e(rule.id)}</a></td>'
            f"<td>{_badge(rule.severity)}</td><td>{_e(rule.question)}</td>"
            f'<td class="controls">{_e("; ".join(rule.controls))}</td>'
            f'<td class="num">{count}</td></tr>'
        )
    return (
        '<h2 id="findings">Findings per rule</h2><div class="scroll"><table><thead><tr>'
        '<th>rule</th><th>severity</th><th>question</th><th>controls</th><th class="num">'
        f"findings</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _rule_section(result: RuleResult, max_rows: int) -> str:
    rule = result.rule
    shown = result.rows[:max_rows]
    settings = ", ".join(
        f"{name}={format_value(value) or '(none)'}" for name, value in result.params.items()
    )
    parts = [
        f'<section id="rule-{_e(rule.id)}"><h3>{_e(rule.title)} {_badge(rule.severity)} '
        f'<span class="muted">({len(result.rows)})</span></h3>',
        f'<p class="question">{_e(rule.question)}</p>',
        f'<p class="controls">{_e("; ".join(rule.controls))} &middot; rule <code>'
        f"{_e(rule.id)}</code> &middot; {_e(settings)}</p>",
    ]
    if rule.note:
        parts.append(f'<p class="note">{_e(rule.note)}</p>')
    if not result.rows:
        parts.append('<p><span class="badge ok">none</span> nothing found in the period.</p>')
    else:
        parts.append(_table(result.columns, shown))
        if len(result.rows) > len(shown):
            parts.append(
                f'<p class="note">{len(result.rows) - len(shown)} more row(s) not shown; all of '
                f"them: <code>hoop-sessions query {_e(rule.id)} --format csv</code> with the "
                "same period.</p>"
            )
    parts.append("</section>")
    return "\n".join(parts)


def render(data: ReportData, *, max_rows: int = MAX_ROWS_PER_RULE) -> str:
    """The report as one HTML document."""
    findings = sum(len(r.rows) for r in data.findings)
    high = sum(len(r.rows) for r in data.findings if r.rule.severity == "high")
    sessions = sum(d.sessions_in_warehouse for d in data.days)
    rules_hit = sum(1 for r in data.findings if r.rows)
    content = [
        '<div class="cards">',
        _card("sessions in period", sessions),
        _card("findings", findings, "alert" if findings else "good"),
        _card("high-severity findings", high, "alert" if high else "good"),
        _card("rules with findings", f"{rules_hit} / {len(data.findings)}"),
        "</div>",
        _coverage(data),
        _charts(data),
        _rule_overview(data),
        '<h2 id="evidence">Evidence by rule</h2>',
        *(_rule_section(r, max_rows) for r in data.findings),
        '<h2 id="summaries">Access reviews</h2>',
        *(_rule_section(r, max_rows) for r in data.summaries),
    ]
    period = f"{data.start.isoformat()} to {data.end.isoformat()}"
    extra = {k: v for k, v in data.params.items() if k not in ("start", "end")}
    settings = ", ".join(f"{k}={format_value(v)}" for k, v in sorted(extra.items()))
    generated = data.generated_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Template(_asset("report.html")).substitute(
        title=_e(f"hoop sessions: compliance evidence, {period}"),
        subtitle=_e(
            f"Sessions started on UTC days {period} (inclusive). Generated {generated}"
            + (f"; parameters: {settings}" if settings else "")
            + "."
        ),
        style=_asset("report.css"),
        content="\n".join(content),
        footer=_e(
            "Generated by hoop-sessions from its DuckDB warehouse; each rule is a SQL file in "
            "sql/compliance whose header names the question, controls and severity."
        ),
    )
