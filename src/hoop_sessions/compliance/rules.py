"""Compliance rules: the SQL files in ``sql/compliance``, their headers, and running them.

A rule is one ``.sql`` file. It opens with a header of ``-- key: value`` lines (a line starting
``--`` and two or more spaces continues the previous value), then one SELECT statement::

    -- id: self_approval                      (must equal the file name)
    -- title: Self-approved sessions
    -- question: Which sessions were approved by the person who ran them?
    -- controls: SOC 2 CC6.1, CC6.3; ISO 27001 A.5.15; PCI DSS 7.2
    -- severity: high                         (high, medium, low; info for summaries)
    -- kind: finding                          (finding: one row per session; summary: aggregates)
    -- param: start date = | First UTC start day to include; empty means no lower bound.
    -- param: max_hours float = 8 | Sessions lasting more than this many hours are flagged.
    -- hoop: gateway/api/review/review.go (who may approve a review)
    -- note: free text: why the rule is written the way it is.

A ``hoop`` line (repeatable) names the gateway behaviour the rule relies on: the source file of
hoop (``github.com/hoophq/hoop``) where it is read, then the behaviour in parentheses. The shipped
rules each have at least one, so that a change of that file in a new hoop release points at the
rules to check. The header is parsed strictly (an unknown key, a missing one or a parameter declared but not used
is an error) because a rule whose metadata is wrong produces audit evidence that is wrong. Every
parameter reaches DuckDB as a bound ``$name`` value, never as SQL text. Every rule declares the
``start`` and ``end`` dates (inclusive, on ``sessions.start_day``) so that any rule can be run for
an audit period, and keeps to it with ``in_period(start_day, $start, $end)``, a macro of
``sql/schema/macros.sql`` that every load creates in the warehouse. Finding rules return
``session_id`` and ``start_day`` plus evidence columns, at most one row per session;
``refresh_findings`` stores them in ``compliance_findings``. A finding opens with the columns that
name its session, selected as ``unnest(finding_session(f))`` or, with the approvers,
``unnest(finding_evidence(f))`` (macros of the same file, given the row ``f`` they come from).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast

import duckdb

from hoop_sessions.build import schema
from hoop_sessions.errors import HoopSessionsError
from hoop_sessions.paths import sql_dir
from hoop_sessions.warehouse import load as warehouse

ParamValue: TypeAlias = dt.date | int | float | str
ParamType = Literal["date", "int", "float", "text"]
Severity = Literal["high", "medium", "low", "info"]
Kind = Literal["finding", "summary"]

SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low", "info")
FINDING_COLUMNS = ("session_id", "start_day")

_HEADER_KEYS = frozenset(
    {"id", "title", "question", "controls", "severity", "kind", "param", "hoop", "note"}
)
_REQUIRED_KEYS = ("id", "title", "question", "controls", "severity", "kind")
_KEY_LINE = re.compile(r"^-- ([a-z_]+): ?(.*)$")
_CONTINUATION_LINE = re.compile(r"^--\s{2,}(\S.*)$")
_PARAM = re.compile(
    r"^(?P<name>[a-z][a-z0-9_]*)\s+(?P<type>date|int|float|text)\s*=\s*(?P<default>[^|]*?)\s*"
    r"\|\s*(?P<meaning>\S.*)$"
)
# A hoop source file (a relative path with an extension), then the behaviour in parentheses.
_HOOP = re.compile(
    r"^(?P<source>[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*\.[a-z]+)\s+\((?P<behaviour>.+)\)$"
)
_RULE_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class RuleError(HoopSessionsError):
    """Base of the errors of this module."""


class RuleFileError(RuleError):
    """A rule file is malformed: its header, its parameters or its columns."""


class UnknownRuleError(RuleError):
    """No rule has the requested id."""

    def __init__(self, rule_id: str, known: Iterable[str]) -> None:
        self.rule_id = rule_id
        self.known = tuple(known)
        super().__init__(f"unknown rule {rule_id!r}; rules: {', '.join(self.known)}")


class UnknownParameterError(RuleError):
    """A parameter was given that the rule (or, for a refresh, any rule) does not declare."""

    def __init__(self, names: Iterable[str], *, where: str, known: Iterable[str]) -> None:
        self.names = tuple(sorted(names))
        self.known = tuple(known)
        super().__init__(
            f"unknown parameter(s) {', '.join(self.names)} for {where}; "
            f"parameters: {', '.join(self.known) or '(none)'}"
        )


class ParameterValueError(RuleError):
    """A parameter value cannot be read as the parameter's type."""


@dataclass(frozen=True)
class Param:
    """A rule parameter as declared in the header."""

    name: str
    type: ParamType
    default: ParamValue | None
    meaning: str

    def coerce(self, value: object) -> ParamValue | None:
        """The value as this parameter's type; text (from a command line) is parsed."""
        if value is None:
            return None
        if isinstance(value, str):
            return self._parse(value)
        # bool is an int subclass; a flag passed for a number is a mistake, not a 0/1.
        ok = {
            "date": isinstance(value, dt.date) and not isinstance(value, dt.datetime),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool),
            "text": False,
        }[self.type]
        if not ok:
            raise ParameterValueError(
                f"parameter {self.name} expects {self.type}, got {type(value).__name__} {value!r}"
            )
        return float(cast(float, value)) if self.type == "float" else cast(ParamValue, value)

    def _parse(self, text: str) -> ParamValue | None:
        text = text.strip()
        if self.type == "text":
            return text
        if text == "":
            return None
        try:
            if self.type == "date":
                return dt.date.fromisoformat(text)
            if self.type == "int":
                return int(text)
            return float(text)
        except ValueError:
            example = {"date": "2025-01-31", "int": "7", "float": "8.5"}[self.type]
            raise ParameterValueError(
                f"parameter {self.name} expects a {self.type} (e.g. {example}), got {text!r}"
            ) from None


@dataclass(frozen=True)
class Rule:
    """One compliance rule: its header and its SQL."""

    id: str
    title: str
    question: str
    controls: tuple[str, ...]
    severity: Severity
    kind: Kind
    params: tuple[Param, ...]
    note: str
    sql: str
    # Each: "<hoop source file> (<behaviour the rule relies on>)".
    hoop: tuple[str, ...] = ()

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def bind(self, values: Mapping[str, object] | None = None) -> dict[str, ParamValue | None]:
        """Every declared parameter with its value: the given one, else the default."""
        values = values or {}
        unknown = set(values) - set(self.param_names)
        if unknown:
            raise UnknownParameterError(unknown, where=f"rule {self.id}", known=self.param_names)
        return {
            p.name: p.coerce(values[p.name]) if p.name in values else p.default for p in self.params
        }


@dataclass(frozen=True)
class RuleResult:
    """The rows a rule returned, with the parameter values it ran with."""

    rule: Rule
    params: Mapping[str, ParamValue | None]
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class FindingsRefresh:
    """What ``refresh_findings`` wrote: findings per rule, all stamped with ``found_at``."""

    found_at: dt.datetime
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def rules_dir() -> Path:
    """The folder of the rule files (``sql/compliance``, packaged or in the checkout)."""
    return sql_dir() / "compliance"


def load_rules(directory: Path | None = None) -> dict[str, Rule]:
    """All rules, keyed by id, in severity order (high first), then by id."""
    directory = directory or rules_dir()
    rules = [parse_rule(p.read_text(encoding="utf-8"), source=p) for p in directory.glob("*.sql")]
    if not rules:
        raise RuleFileError(f"no rule files (*.sql) in {directory}")
    rules.sort(key=lambda r: (SEVERITIES.index(r.severity), r.id))
    return {r.id: r for r in rules}


def get_rule(rule_id: str, rules: Mapping[str, Rule] | None = None) -> Rule:
    """The rule with this id; the error lists the ids that exist."""
    rules = rules if rules is not None else load_rules()
    try:
        return rules[rule_id]
    except KeyError:
        raise UnknownRuleError(rule_id, rules) from None


def parse_rule(text: str, *, source: Path) -> Rule:
    """A rule from the text of its file; ``source`` names it in errors and gives the id."""

    def fail(message: str) -> RuleFileError:
        return RuleFileError(f"{source.name}: {message}")

    lines = text.splitlines()
    fields: dict[str, list[str]] = {}
    params: list[str] = []
    hoop: list[list[str]] = []
    current: list[str] | None = None
    body_start = len(lines)
    for number, line in enumerate(lines, start=1):
        if not line.startswith("--"):
            body_start = number - 1
            break
        if key_line := _KEY_LINE.match(line):
            key, value = key_line.groups()
            if key not in _HEADER_KEYS:
                raise fail(f"line {number}: unknown header key {key!r}")
            if key == "param":
                params.append(value.strip())
                current = None
                continue
            if key == "hoop":
                current = [value.strip()]
                hoop.append(current)
                continue
            if key in fields:
                raise fail(f"line {number}: header key {key!r} given twice")
            current = fields[key] = [value.strip()]
        elif (more := _CONTINUATION_LINE.match(line)) and current is not None:
            current.append(more.group(1).strip())
        else:
            raise fail(f"line {number}: expected '-- key: value' or an indented continuation")
    header = {key: " ".join(parts) for key, parts in fields.items()}

    missing = [k for k in _REQUIRED_KEYS if not header.get(k)]
    if missing:
        raise fail(f"header misses {', '.join(missing)}")
    if header["id"] != source.stem or not _RULE_ID.match(header["id"]):
        raise fail(f"id {header['id']!r} must equal the file name and be lower_snake_case")
    if header["kind"] not in ("finding", "summary"):
        raise fail(f"kind {header['kind']!r} is not finding or summary")
    kind = cast(Kind, header["kind"])
    allowed: tuple[str, ...] = ("info",) if kind == "summary" else ("high", "medium", "low")
    if header["severity"] not in allowed:
        raise fail(f"severity {header['severity']!r} of a {kind} is not one of {allowed}")

    sources = tuple(" ".join(parts) for parts in hoop)
    for source_line in sources:
        if not _HOOP.match(source_line):
            raise fail(
                f"hoop {source_line!r}: expected 'path/of/hoop/file.go (the behaviour relied on)'"
            )

    declared = tuple(_parse_param(spec, fail) for spec in params)
    names = [p.name for p in declared]
    if len(set(names)) != len(names):
        raise fail("a parameter is declared twice")
    for period in ("start", "end"):
        if not any(p.name == period and p.type == "date" for p in declared):
            raise fail(f"every rule declares the date parameter {period!r}")

    sql = "\n".join(lines[body_start:]).strip().rstrip(";").strip()
    if not sql:
        raise fail("no SQL after the header")
    used = _placeholders(sql)
    if used != set(names):
        raise fail(
            f"parameters declared but unused: {sorted(set(names) - used) or 'none'}; "
            f"used but undeclared: {sorted(used - set(names)) or 'none'}"
        )
    return Rule(
        id=header["id"],
        title=header["title"],
        question=header["question"],
        controls=tuple(c.strip() for c in header["controls"].split(";") if c.strip()),
        severity=cast(Severity, header["severity"]),
        kind=kind,
        params=declared,
        note=header.get("note", ""),
        sql=sql,
        hoop=sources,
    )


def _parse_param(spec: str, fail: Callable[[str], RuleFileError]) -> Param:
    match = _PARAM.match(spec)
    if not match:
        raise fail(f"param {spec!r}: expected 'name type = default | meaning'")
    name, type_, default, meaning = match.group("name", "type", "default", "meaning")
    param = Param(name=name, type=cast(ParamType, type_), default=None, meaning=meaning)
    try:
        # An empty default means no value: SQL NULL, which the rules read as "no bound".
        value = param.coerce(default) if default else None
    except ParameterValueError as exc:
        raise fail(f"param {name}: bad default: {exc}") from None
    return Param(name=name, type=param.type, default=value, meaning=meaning)


def _placeholders(sql: str) -> set[str]:
    # Comments may mention $names in prose; only code counts. Rules contain no dollar-quoted
    # strings, so a plain scan of the remaining text is exact.
    code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return set(_PLACEHOLDER.findall(code))


def bind_each(
    rules: Iterable[Rule], params: Mapping[str, object] | None, *, where: str = "the rules"
) -> dict[str, dict[str, ParamValue | None]]:
    """Each rule's bound parameters from one set of values shared by all the rules.

    A value applies to every rule that declares it (``prod_env`` reaches the production rules,
    ``start`` reaches all); a name that none declares is an error, not silently ignored.
    """
    rules = list(rules)
    given = dict(params or {})
    known = sorted({name for r in rules for name in r.param_names})
    unknown = set(given) - set(known)
    if unknown:
        raise UnknownParameterError(unknown, where=where, known=known)
    return {r.id: r.bind({k: v for k, v in given.items() if k in r.param_names}) for r in rules}


# Settings every rule runs with. TimeZone: times in JSON and text read as UTC. The OR-filter
# threshold: a join whose build side holds up to this many distinct values of a key (a rule's
# flagged sessions' start days) hands the probe side's scan that list, so the scan skips the row
# groups of other days (DuckDB's default, 50, stops short of a year's worth of days).
_RULE_SETTINGS = {"TimeZone": "UTC", "dynamic_or_filter_threshold": "1000"}


@contextmanager
def _rule_settings(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run with ``_RULE_SETTINGS``, then put the connection's own values back."""
    names = list(_RULE_SETTINGS)
    # Setting names are this module's constants; current_setting takes a constant name.
    (values,) = con.execute(
        "SELECT " + ", ".join(f"current_setting('{name}')" for name in names)
    ).fetchall()
    previous = dict(zip(names, (str(v) for v in values), strict=True))
    for name, value in _RULE_SETTINGS.items():
        # A SET takes no bound parameter; names and values are this module's constants.
        con.execute(f"SET {name} = '{value}'")
    try:
        yield
    finally:
        for name, value in previous.items():
            # The value is DuckDB's own setting, read just above.
            con.execute(f"SET {name} = '" + value.replace("'", "''") + "'")


# ``_fetch_rows`` turns a rule's rows into Python values itself. DuckDB's row-by-row conversion
# spends several microseconds on each TIMESTAMPTZ (a time zone lookup per value) and was most of
# the time of the rules that return tens of thousands of rows; strings and numbers come out of
# Arrow several times faster, and dates and times are rebuilt from integers.
_EPOCH_DAY = dt.date(1970, 1, 1).toordinal()
_US_PER_HOUR, _US_PER_MINUTE, _US_PER_SECOND = 3_600_000_000, 60_000_000, 1_000_000
_OUT_OF_RANGE = 2**63 - 1


def _each_distinct(column: list[Any], make: Callable[[Any], Any]) -> list[Any]:
    """``column`` with each value replaced by ``make(value)``, made once per distinct value."""
    made = {v: make(v) for v in set(column) if v is not None}
    return [made.get(v) for v in column]


def _time_of(us: int) -> dt.time:
    hours, rest = divmod(us, _US_PER_HOUR)
    minutes, rest = divmod(rest, _US_PER_MINUTE)
    seconds, micros = divmod(rest, _US_PER_SECOND)
    return dt.time(hours, minutes, seconds, micros)


# Types whose Arrow values are already the Python values DuckDB gives.
_PLAIN_TYPES = frozenset(
    {
        "VARCHAR",
        "BOOLEAN",
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "DOUBLE",
    }
)


def _fetch_rows(
    con: duckdb.DuckDBPyConnection, sql: str, bound: Mapping[str, ParamValue | None]
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """The columns and rows of ``sql``, equal to ``con.execute(sql).fetchall()``, faster.

    Columns of other types than the ones handled here, or values out of Python's range, take
    DuckDB's own row-by-row conversion. Runs under ``_rule_settings`` (TimeZone UTC).
    """
    described = con.execute(f"DESCRIBE {sql}", bound).fetchall()
    columns = tuple(str(row[0]) for row in described)
    types = [str(row[1]) for row in described]
    # What DuckDB gives for a TIMESTAMPTZ at the epoch: the values are built from it.
    epoch = cast(
        dt.datetime, con.execute("SELECT TIMESTAMPTZ '1970-01-01 00:00:00+00'").fetchall()[0][0]
    )
    handled = _PLAIN_TYPES | {"DATE", "TIME", "TIMESTAMP WITH TIME ZONE"}
    if not set(types) <= handled or epoch.utcoffset() != dt.timedelta(0):
        return _fetch_rows_slowly(con, sql, bound)
    names = [f"c{i}" for i in range(len(columns))]
    select = []
    for name, type_ in zip(names, types, strict=True):
        if type_ == "DATE":  # days since the epoch; an infinite date is out of Python's range
            select.append(f"{name} - DATE '1970-01-01'")
        elif type_ == "TIME":
            select.append(f"epoch_us({name})")
        elif type_ == "TIMESTAMP WITH TIME ZONE":  # an infinite one becomes a value out of range
            select.append(
                f"CASE WHEN isfinite({name}) THEN epoch_us({name}) "
                f"WHEN {name} IS NOT NULL THEN {_OUT_OF_RANGE} END"
            )
        else:
            select.append(name)
    wrapped = f"SELECT {', '.join(select)} FROM (\n{sql}\n) AS r({', '.join(names)})"
    try:
        table = con.sql(wrapped, params=dict(bound)).to_arrow_table()
    except duckdb.Error:  # let the rule's own statement report its error
        return _fetch_rows_slowly(con, sql, bound)
    values: list[list[Any]] = []
    span = dt.timedelta
    try:
        for i, type_ in enumerate(types):
            column: list[Any] = table.column(i).to_pylist()
            if type_ == "DATE":
                column = _each_distinct(column, lambda v: dt.date.fromordinal(_EPOCH_DAY + v))
            elif type_ == "TIME":
                column = _each_distinct(column, _time_of)
            elif type_ == "TIMESTAMP WITH TIME ZONE":  # mostly distinct: made one by one
                column = [None if v is None else epoch + span(0, 0, v) for v in column]
            values.append(column)
    except (ValueError, OverflowError):  # beyond Python's dates: DuckDB's own conversion decides
        return _fetch_rows_slowly(con, sql, bound)
    return columns, list(zip(*values, strict=True))


def _fetch_rows_slowly(
    con: duckdb.DuckDBPyConnection, sql: str, bound: Mapping[str, ParamValue | None]
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    cursor = con.execute(sql, bound)
    return tuple(d[0] for d in cursor.description or ()), cursor.fetchall()


def run_rule(
    con: duckdb.DuckDBPyConnection, rule: Rule, params: Mapping[str, object] | None = None
) -> RuleResult:
    """Run one rule with its parameters bound (defaults for those not given)."""
    bound = rule.bind(params)
    with _rule_settings(con):
        try:
            columns, rows = _fetch_rows(con, rule.sql, bound)
        except duckdb.BinderException as exc:
            if missing := warehouse.missing_session_summary(con):
                raise RuleError(
                    f"rule {rule.id}: this warehouse was made by an earlier version and its "
                    f"sessions lack {', '.join(missing)}; the next load adds them (or run "
                    "refresh_findings, or open it read-write once with warehouse.ensure_schema)"
                ) from exc
            raise
        except duckdb.CatalogException as exc:
            # Rules read the shared macros and the analyst views (session_access and its parts),
            # which a warehouse made by an earlier version lacks until its next load.
            if missing := missing_views(con):
                raise RuleError(
                    f"rule {rule.id}: this warehouse was made by an earlier version and lacks "
                    f"the macro(s) or view(s) {', '.join(missing)}; the next load adds them (or run "
                    "refresh_findings, or open it read-write once with warehouse.ensure_schema)"
                ) from exc
            raise
    return RuleResult(rule=rule, params=bound, columns=columns, rows=rows)


_CREATED_NAME = re.compile(r"^CREATE OR REPLACE (?:VIEW|MACRO) (\w+)", re.MULTILINE)


def missing_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The macros of ``sql/schema/macros.sql`` and the views of ``sql/schema/views.sql`` that the
    warehouse does not have (the rules read both)."""
    wanted = [
        name
        for file in ("macros.sql", "views.sql")
        for name in _CREATED_NAME.findall((sql_dir() / "schema" / file).read_text(encoding="utf-8"))
    ]
    have = {
        str(name)
        for (name,) in con.execute(
            "SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' "
            "UNION ALL SELECT function_name FROM duckdb_functions() "
            "WHERE schema_name = 'main' AND function_type = 'macro' AND NOT internal"
        ).fetchall()
    }
    return [name for name in wanted if name not in have]


# The findings of a refresh are made aside (a temporary table), then compliance_findings is changed
# only where they differ: most findings survive from one refresh to the next, and rewriting all of
# them (their JSON evidence is most of the table) cost more than running the rules.
_NEW_FINDINGS = "refresh_findings_new"

_INSERT_FINDINGS = """
INSERT INTO {table} (rule, session_id, start_day, severity, detail, found_at)
SELECT $finding_rule, f.session_id, f.start_day, $finding_severity, to_json(f), $finding_found_at
FROM (
{rule_sql}
) AS f
"""

_SAME_FINDING = """
    n.rule = f.rule AND n.session_id = f.session_id AND n.start_day IS NOT DISTINCT FROM f.start_day
    AND n.severity = f.severity AND n.detail IS NOT DISTINCT FROM f.detail
"""


def _replace_findings(con: duckdb.DuckDBPyConnection, found_at: dt.datetime) -> None:
    """Make ``compliance_findings`` hold the new findings, all stamped ``found_at``."""
    # The findings that changed or went away.
    con.execute(
        f"DELETE FROM compliance_findings AS f "
        f"WHERE NOT EXISTS (SELECT 1 FROM {_NEW_FINDINGS} AS n WHERE {_SAME_FINDING})"
    )
    # What is left is one new finding each (a rule returns a session once), unless the table held
    # a finding twice (written by something else than this function): then rewrite them all.
    ((repeated,),) = con.execute(
        "SELECT count(*) - count(DISTINCT (rule, session_id)) FROM compliance_findings"
    ).fetchall()
    if repeated:
        con.execute("DELETE FROM compliance_findings")
    con.execute("UPDATE compliance_findings SET found_at = $found_at", {"found_at": found_at})
    con.execute(
        f"INSERT INTO compliance_findings SELECT n.* FROM {_NEW_FINDINGS} AS n WHERE NOT EXISTS "
        "(SELECT 1 FROM compliance_findings AS f"
        " WHERE f.rule = n.rule AND f.session_id = n.session_id)"
    )


def refresh_findings(
    con_or_path: duckdb.DuckDBPyConnection | str | os.PathLike[str],
    *,
    params: Mapping[str, object] | None = None,
    rules: Mapping[str, Rule] | None = None,
    found_at: dt.datetime | None = None,
) -> FindingsRefresh:
    """Replace the content of ``compliance_findings`` with what every finding rule returns now.

    One transaction: readers see the old findings or the new ones, never a mix, and a failing rule
    leaves the old findings in place. Every finding, old or new, gets ``found_at``. ``params``
    apply to every rule that declares them (e.g. ``{"prod_env": "production"}``); a name no
    finding rule declares is an error. Summary rules are not run. Pass an open read-write
    connection (not inside a transaction) or the warehouse path. A warehouse made by an earlier
    version gets first what the rules read: the sessions' summary, and the analyst views (the
    whole schema catches up when a view is missing).
    """
    rules = rules if rules is not None else load_rules()
    findings = [r for r in rules.values() if r.kind == "finding"]
    bound = bind_each(findings, params, where="the finding rules")
    found_at = found_at or dt.datetime.now(dt.UTC)

    if not isinstance(con_or_path, duckdb.DuckDBPyConnection):
        with duckdb.connect(os.fspath(con_or_path)) as con:
            return refresh_findings(con, params=params, rules=rules, found_at=found_at)

    con = con_or_path
    if missing_views(con):  # made by an earlier version: tables, summary and views catch up
        warehouse.ensure_schema(con)
    else:
        warehouse.ensure_session_summary(con)
    counts: dict[str, int] = {}
    with _rule_settings(con), warehouse.transaction(con):
        con.execute(schema.ddl(schema.COMPLIANCE_FINDINGS))
        con.execute(
            f"CREATE OR REPLACE TEMPORARY TABLE {_NEW_FINDINGS} AS FROM compliance_findings LIMIT 0"
        )
        for rule in findings:
            counts[rule.id] = _insert_findings(con, rule, bound[rule.id], found_at)
        _replace_findings(con, found_at)
        con.execute(f"DROP TABLE {_NEW_FINDINGS}")
    return FindingsRefresh(found_at=found_at, counts=counts)


def _insert_findings(
    con: duckdb.DuckDBPyConnection,
    rule: Rule,
    bound: Mapping[str, ParamValue | None],
    found_at: dt.datetime,
) -> int:
    values = {
        **bound,
        "finding_rule": rule.id,
        "finding_severity": rule.severity,
        "finding_found_at": found_at,
    }
    try:
        # The rule is the subquery: evidence becomes JSON in the database, no round trip.
        con.execute(_INSERT_FINDINGS.format(table=_NEW_FINDINGS, rule_sql=rule.sql), values)
    except duckdb.BinderException as exc:
        raise RuleFileError(
            f"{rule.id}.sql: a finding rule must return the columns {FINDING_COLUMNS}: {exc}"
        ) from exc
    (inserted, duplicated) = cast(
        tuple[int, int],
        con.execute(
            "SELECT count(*), count(*) - count(DISTINCT session_id) "
            f"FROM {_NEW_FINDINGS} WHERE rule = $rule",
            {"rule": rule.id},
        ).fetchone(),
    )
    if duplicated:
        raise RuleFileError(
            f"{rule.id}.sql returned {duplicated} duplicate session row(s); a finding rule "
            "returns at most one row per session"
        )
    return inserted
