"""The evidence report: one self-contained HTML file for an audit period.

It states the period and how complete the data is (days synced, the sync ledger reconciled,
who the sync's token was), then what every compliance rule found, with charts and the evidence
rows. The file opens offline: CSS is inlined, the charts are SVG drawn here, nothing is fetched
and nothing runs. Every value from the warehouse is HTML-escaped: session data is user input
(connection names, guardrail rule names, typed text) and must not become markup.

The page is Jinja2 templates in ``report_assets/`` (``report.html.j2`` and the building blocks
in ``macros.html.j2``), rendered with autoescaping on, so escaping is the engine's default and not
something each line of markup must remember. The queries behind the coverage section and the
charts are SQL files there too; the findings come from the rules themselves
(``compliance.rules.run_rule``), run for the period.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Self

import duckdb
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from hoop_sessions.compliance.rules import Rule, RuleResult, bind_each, load_rules, run_rule
from hoop_sessions.errors import HoopSessionsError
from hoop_sessions.tempfiles import write_atomic

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
    # Written aside and renamed (a reader never sees half a file). The report holds session data
    # (who, where, what they typed), like the data directory, whose files are the owner's only:
    # 0600 whatever the umask; sharing it is a choice.
    write_atomic(out, document.encode("utf-8"), private=True)
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


class _Html(Markup):
    """Markup whose ``format``, ``join`` and ``+`` escape what they insert as the report always
    has: a value as ``format_value`` shows it, through ``html.escape`` (``&quot;`` for a quote,
    where MarkupSafe writes ``&#34;``). Markup already (a macro's output, a chart) goes in as it is.
    """

    @classmethod
    def escape(cls, s: Any, /) -> Self:
        if hasattr(s, "__html__"):
            return cls(s.__html__())
        return cls(html.escape(format_value(s), quote=True))


# --- SVG charts ---------------------------------------------------------------------------
# Drawn here, where the geometry is computed, as markup: ``_Html(...).format(...)`` escapes each
# value it inserts (labels are session data), so the finished SVG goes into the page as it is.


def _nice_ceiling(value: float) -> tuple[float, float]:
    """An axis maximum at or above ``value`` and a tick step: 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1.0, 1.0
    raw_step = value / 4
    power = 10 ** math.floor(math.log10(raw_step))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw_step)
    step = max(step, 1.0)
    return step * math.ceil(value / step), step


def _svg_open(width: int, height: int, title: str) -> list[Markup]:
    return [
        _Html(
            '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {}" role="img" '
            'aria-label="{}">'
        ).format(width, height, title),
        _Html("<title>{}</title>").format(title),
    ]


def _y_axis(
    parts: list[Markup],
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
        parts.append(
            _Html('<line class="axis" x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}"/>').format(
                left, right, y, y
            )
        )
        parts.append(
            _Html('<text class="tick" x="{}" y="{:.1f}" text-anchor="end">{:g}</text>').format(
                left - 6, y + 4, tick
            )
        )
        tick += step


def stacked_bars_svg(
    days: Sequence[dt.date], series: Mapping[str, Sequence[int]], *, title: str
) -> Markup:
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
                    _Html(
                        '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}">'
                        "<title>{} {}: {}</title></rect>"
                    ).format(x, y, bar, h, colour, day, name, values[i])
                )
        if i % label_every == 0:
            parts.append(
                _Html('<text class="tick" x="{:.1f}" y="{}" text-anchor="middle">{}</text>').format(
                    x + bar / 2, height - bottom + 16, day.strftime("%m-%d")
                )
            )
    parts.append(_Html("</svg>"))
    legend = _Html("").join(
        _Html('<span><span class="swatch" style="background:{}"></span>{}</span>').format(
            colour, name
        )
        for name, colour in zip(series, PALETTE * 4, strict=False)
    )
    return _Html("").join(parts) + _Html('<div class="legend">{}</div>').format(legend)


def columns_svg(labels: Sequence[str], counts: Sequence[int], *, title: str) -> Markup:
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
            _Html(
                '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}">'
                "<title>{}: {}</title></rect>"
            ).format(x, y, slot * 0.7, h, PALETTE[0], label, count)
        )
        parts.append(
            _Html(
                '<text x="{:.1f}" y="{:.1f}" text-anchor="middle" font-size="11">{}</text>'
            ).format(x + slot * 0.35, y - 4, count)
        )
        parts.append(
            _Html('<text class="tick" x="{:.1f}" y="{}" text-anchor="middle">{}</text>').format(
                x + slot * 0.35, height - bottom + 16, label
            )
        )
    parts.append(_Html("</svg>"))
    return _Html("").join(parts)


def hbars_svg(rows: Sequence[tuple[str, int, str]], *, title: str) -> Markup:
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
            _Html('<text x="{}" y="{}" text-anchor="end" font-size="12">{}</text>').format(
                left - 8, y + 14, label
            )
        )
        parts.append(
            _Html(
                '<rect x="{}" y="{}" width="{:.1f}" height="{}" fill="{}">'
                "<title>{}: {}</title></rect>"
            ).format(left, y + 3, w, row_h - 8, colour, label, count)
        )
        parts.append(
            _Html('<text x="{:.1f}" y="{}" font-size="12">{}</text>').format(
                left + w + 6, y + 14, count
            )
        )
    parts.append(_Html("</svg>"))
    return _Html("").join(parts)


def _charts(data: ReportData) -> dict[str, str]:
    """The three charts of the page, and the approval latency figures beneath the second."""
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
    return {
        "sessions_per_day": stacked_bars_svg(
            days, series, title="Sessions per UTC day, stacked by environment"
        ),
        "approval_latency": columns_svg(labels, counts, title="Approvals by latency bucket"),
        "approval_stats": stats,
        "findings_per_rule": hbars_svg(per_rule, title="Findings per rule, coloured by severity"),
    }


def _minutes(value: object) -> str:
    if value is None:
        return "-"
    minutes = float(value)  # type: ignore[arg-type]
    return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


# --- HTML ---------------------------------------------------------------------------------


def _column_classes(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Per column, the class of its cells: ``num`` (numbers, right-aligned), ``mono`` (ids)."""
    classes = []
    for i, name in enumerate(columns):
        values = [r[i] for r in rows if r[i] is not None]
        numeric = bool(values) and all(
            isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in values
        )
        classes.append("num" if numeric else "mono" if name.endswith("_id") else "")
    return classes


def _break_at_underscores(name: str) -> Markup:
    """A column name that may break after an underscore (and only there): a wide table's header
    row no longer sets its width."""
    return _Html.escape(name).replace("_", Markup("_<wbr>"))


@cache
def _templates() -> Environment:
    """The report's templates, loaded once per process."""
    environment = Environment(
        loader=PackageLoader("hoop_sessions.compliance", "report_assets"),
        # Session data is user input (connection names, guardrail rule names, typed text): every
        # value a template prints is escaped unless it is markup already. ``finalize`` escapes
        # first, as the report always has (see _Html); autoescape stays on behind it.
        autoescape=True,
        finalize=_Html.escape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["format_value"] = format_value
    environment.filters["break_at_underscores"] = _break_at_underscores
    environment.globals["column_classes"] = _column_classes
    return environment


def render(data: ReportData, *, max_rows: int = MAX_ROWS_PER_RULE) -> str:
    """The report as one HTML document."""
    synced = [d for d in data.days if d.synced]
    extra = {k: v for k, v in data.params.items() if k not in ("start", "end")}
    template = _templates().get_template("report.html.j2")
    return template.render(
        data=data,
        max_rows=max_rows,
        period=f"{data.start.isoformat()} to {data.end.isoformat()}",
        generated=data.generated_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        settings=", ".join(f"{k}={format_value(v)}" for k, v in sorted(extra.items())),
        totals={
            "sessions": sum(d.sessions_in_warehouse for d in data.days),
            "findings": sum(len(r.rows) for r in data.findings),
            "high": sum(len(r.rows) for r in data.findings if r.rule.severity == "high"),
            "rules_hit": sum(1 for r in data.findings if r.rows),
        },
        coverage={
            "synced": len(synced),
            "listed": sum(d.sessions_listed for d in synced),
            "loaded": sum(d.sessions_loaded for d in synced),
            "rejected": sum(d.sessions_rejected for d in synced),
            "unreconciled": sum(1 for d in synced if not d.reconciled),
        },
        # The per-day ledger table: one column per DayCoverage field, a row per day.
        ledger={
            "columns": tuple(f.name for f in fields(DayCoverage)),
            "rows": [astuple(d) for d in data.days],
            "bad": [not d.reconciled for d in data.days],
        },
        charts=_charts(data),
    )
