"""The analyst commands: ``rules``, ``query RULE`` and ``report``.

They read the warehouse named by the environment (``HOOP_DATA_DIR``, see ``config``) through a
read-only connection, so they never block on each other and never change the data; a load that
runs meanwhile waits for them (see ``warehouse.connect``). Mistakes in what the analyst typed
(unknown rule, unknown parameter, a value of the wrong type) are usage errors, exit code 2, with
the list of what exists; a missing warehouse says to sync first.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import shutil
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import duckdb
import orjson
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hoop_sessions.cli.options import DAY
from hoop_sessions.compliance.report import format_value, write_report
from hoop_sessions.compliance.rules import (
    ParameterValueError,
    Rule,
    RuleError,
    UnknownParameterError,
    UnknownRuleError,
    get_rule,
    load_rules,
    run_rule,
)
from hoop_sessions.config import Settings
from hoop_sessions.errors import HoopSessionsError
from hoop_sessions.warehouse import published

FORMATS = ("table", "csv", "json")
FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table for reading; csv or json (to stdout) for tools.",
)
VERTICAL = click.option(
    "-x",
    "--vertical",
    is_flag=True,
    help="With --format table: one block of column | value lines per row, values whole.",
)


def output_width() -> int | None:
    """The width tables must fit: COLUMNS when set, the terminal's when stdout is one, else none.

    Piped output has no width to respect: rows go out whole, for the next tool to read.
    """
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _natural_width(table: Table) -> int:
    return Console(width=100_000).measure(table).maximum


def _print(table: Table) -> None:
    """Print a table at its natural width, or folded to the terminal where it cannot fit."""
    width = output_width()
    natural = _natural_width(table)
    console = Console(highlight=False, width=natural if width is None else min(width, natural))
    console.print(table)


def _parse_params(values: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="'--param'")
        params[name.strip()] = value
    return params


def _period(start: dt.date | None, end: dt.date | None) -> dict[str, dt.date]:
    if start and end and end < start:
        raise click.BadParameter(f"--end {end} is before --start {start}", param_hint="'--end'")
    return {k: v for k, v in (("start", start), ("end", end)) if v is not None}


def _rule(rule_id: str, rules: Mapping[str, Rule]) -> Rule:
    try:
        return get_rule(rule_id, rules)
    except UnknownRuleError as exc:
        raise click.UsageError(
            f"unknown rule {rule_id!r}. Rules: {', '.join(exc.known)} (list them: hoop-sessions rules)"
        ) from None


@contextmanager
def _usage_errors() -> Iterator[None]:
    """Parameter mistakes are the caller's: a usage error (exit 2), not a failure (exit 1)."""
    try:
        yield
    except (UnknownParameterError, ParameterValueError) as exc:
        raise click.UsageError(str(exc)) from None


@contextmanager
def _read_only_warehouse() -> Iterator[duckdb.DuckDBPyConnection]:
    settings = Settings.from_env()
    where = published.location(settings)
    if not published.exists(settings):
        raise click.ClickException(
            f"no warehouse at {where}: run a sync first (hoop-sessions backfill --start YYYY-MM-DD "
            "--end YYYY-MM-DD, or hoop-sessions demo), or set HOOP_DATA_DIR to the data directory "
            "that holds warehouse.duckdb"
        )
    try:
        with published.connect(settings) as con:
            yield con
    except duckdb.CatalogException as exc:
        raise click.ClickException(
            f"{where} lacks a table the rules need ({exc}); run a sync to create and fill it"
        ) from None
    except HoopSessionsError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("rules")
@click.argument("rule_id", metavar="[RULE]", required=False)
def rules_command(rule_id: str | None) -> None:
    """List the compliance rules, or show one RULE in full (controls, parameters, notes)."""
    rules = load_rules()
    if rule_id is None:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False)
        table.add_column("rule", no_wrap=True)
        table.add_column("kind")
        table.add_column("severity")
        table.add_column("question")
        for rule in rules.values():
            table.add_row(rule.id, rule.kind, rule.severity, rule.question)
        _print(table)
        return
    rule = _rule(rule_id, rules)
    click.echo(f"{rule.id}: {rule.title}")
    for label, text in (
        ("question", rule.question),
        ("controls", "; ".join(rule.controls)),
        ("severity", rule.severity),
        ("kind", rule.kind),
        ("note", rule.note),
    ):
        if text:
            click.echo(f"{label}: {text}")
    params = Table("parameter", "type", "default", "meaning", box=box.SIMPLE_HEAD, title=None)
    for p in rule.params:
        params.add_row(p.name, p.type, format_value(p.default) or "(none)", p.meaning)
    _print(params)


@click.command("query")
@click.argument("rule_id", metavar="RULE")
@click.option("--start", type=DAY, help="First UTC start day, YYYY-MM-DD.")
@click.option("--end", type=DAY, help="Last UTC start day (inclusive).")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A rule parameter (repeatable); `hoop-sessions rules RULE` lists them.",
)
@FORMAT
@VERTICAL
def query_command(
    rule_id: str,
    start: dt.date | None,
    end: dt.date | None,
    params: tuple[str, ...],
    fmt: str,
    vertical: bool,
) -> None:
    """Run one compliance RULE on the warehouse and print its rows."""
    rule = _rule(rule_id, load_rules())
    values: dict[str, object] = {**_parse_params(params), **_period(start, end)}
    with _usage_errors():
        bound = rule.bind(values)  # before opening the warehouse: a typo fails fast
    with _read_only_warehouse() as con:
        try:
            result = run_rule(con, rule, bound)
        except RuleError as exc:
            raise click.ClickException(str(exc)) from None
    settings = ", ".join(f"{k}={format_value(v) or '(none)'}" for k, v in bound.items())
    print_rows(
        result.columns,
        result.rows,
        fmt=fmt,
        vertical=vertical,
        title=f"{rule.id} ({rule.severity}): {rule.title}",
        caption=f"{len(result.rows)} row(s); {settings}",
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return format_value(value)


def _echo_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    # orjson writes datetimes as RFC 3339 and dates as ISO: what other tools parse.
    data = orjson.dumps(records, default=_json_default, option=orjson.OPT_INDENT_2)
    click.echo(data.decode())


def _echo_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_value(v) for v in row])
    click.echo(buffer.getvalue(), nl=False)


def print_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    fmt: str = "table",
    vertical: bool = False,
    title: str | None = None,
    caption: str | None = None,
) -> None:
    """Rows as json, csv, or for people: a table that fits the terminal, or one block per row.

    A table cell never folds a value: an id or a timestamp split across lines cannot be read or
    copied. When the whole rows do not fit the width, each row is printed as a block of
    ``column | value`` lines instead, the values whole (also with ``vertical``).
    """
    if fmt == "json":
        _echo_json(columns, rows)
        return
    if fmt == "csv":
        _echo_csv(columns, rows)
        return
    table = _rows_table(columns, rows)
    width = output_width()
    natural = _natural_width(table)
    if not vertical and (width is None or natural <= width):
        # Title and caption as lines of their own: rich would wrap them to a narrow table's width.
        if title:
            click.echo(_fill(title, width))
        Console(highlight=False, width=natural).print(table)
        if caption:
            click.echo(_fill(caption, width))
        return
    _echo_vertical(columns, rows, title=title, caption=caption, width=width)
    if not vertical and width is not None:
        note = (
            f"(one block per row: the {len(columns)} columns need {natural} characters, the "
            f"terminal has {width}; --format csv gives them in rows)"
        )
        click.echo(_fill(note, width))


def _fill(text: str, width: int | None) -> str:
    """Prose wrapped at spaces to ``width``; a word (an id, a time) is never cut."""
    if width is None:
        return text
    return textwrap.fill(text, width, break_long_words=False, break_on_hyphens=False)


def _rows_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD)
    numeric = [
        bool(rows)
        and all(
            isinstance(r[i], int | float | Decimal) and not isinstance(r[i], bool)
            for r in rows
            if r[i] is not None
        )
        for i in range(len(columns))
    ]
    for column, right in zip(columns, numeric, strict=True):
        table.add_column(column, no_wrap=True, justify="right" if right else "left")
    for row in rows:
        # Text, not str: a value such as "[bold]" is data, not rich markup.
        table.add_row(*(Text(format_value(v)) for v in row))
    return table


def _echo_vertical(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None,
    caption: str | None,
    width: int | None,
) -> None:
    if title:
        click.echo(_fill(title, width))
    label = max((len(c) for c in columns), default=0)
    for n, row in enumerate(rows, 1):
        click.echo(f"-[ row {n} ]" + "-" * max(label - 6, 4))
        for column, value in zip(columns, row, strict=True):
            click.echo(f"{column:<{label}} | {format_value(value)}")
    if caption:
        click.echo(_fill(caption, width))


@click.command("report")
@click.option("--start", type=DAY, help="First UTC day; default: the first loaded.")
@click.option("--end", type=DAY, help="Last UTC day (inclusive); default: the last.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file to write.",
)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A parameter for every rule that declares it, e.g. prod_env=production (repeatable).",
)
def report_command(
    start: dt.date | None, end: dt.date | None, out: Path, params: tuple[str, ...]
) -> None:
    """Write the compliance evidence report: one self-contained HTML file for the period."""
    values = _parse_params(params)
    if {"start", "end"} & set(values):
        raise click.UsageError("give the period with --start and --end, not as --param")
    _period(start, end)
    with _read_only_warehouse() as con, _usage_errors():
        data = write_report(con, out=out, start=start, end=end, params=values)
    findings = sum(len(r.rows) for r in data.findings)
    click.echo(
        f"wrote {out}: {data.start} to {data.end}, {findings} finding(s) from "
        f"{len(data.findings)} rules",
        err=True,
    )
    if missing := data.days_without_data:
        shown = ", ".join(d.isoformat() for d in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        click.echo(
            f"{len(missing)} of {len(data.days)} days had no data (never synced, so not in the "
            f"report): {shown}{more}",
            err=True,
        )
