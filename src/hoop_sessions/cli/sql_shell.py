"""``hoop-sessions sql``: read-only SQL on the warehouse, with the project's own DuckDB.

The DuckDB CLI an analyst installs separately is often of another version than the one that wrote
the warehouse and cannot read its storage format; this command always can. It runs one statement
(``hoop-sessions sql "SELECT ..."``) or, without one, a shell: statements end with ``;`` and may
span lines, dot commands (``.tables``, ``.schema``, ``.format``, ``.help``, ``.quit``) answer
questions about the warehouse, and statements read from a pipe run without prompts.

Each statement opens the warehouse read-only and closes it when its rows are read: DuckDB lets one
process write the file or several read it, so a shell that held it between statements would keep
the nightly load waiting for as long as the shell stays open.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import duckdb

from hoop_sessions.cli.analyst import FORMAT, FORMATS, VERTICAL, print_rows
from hoop_sessions.config import Settings
from hoop_sessions.errors import HoopSessionsError
from hoop_sessions.warehouse import load as warehouse
from hoop_sessions.warehouse import published

PROMPT, CONTINUE = "sql> ", "...> "
CANCEL = "\x03"  # Ctrl-C while typing a statement: drop it
HELP = """\
Statements end with ';' and may span lines; each runs on a read-only connection of its own.
  .tables               the tables and views of the warehouse
  .schema [TABLE]       the columns of TABLE (of every table without one)
  .format table|csv|json  how rows are printed (now: {fmt})
  .vertical on|off      with table: one block of column | value lines per row
  .help                 this text
  .quit                 leave (also .exit or Ctrl-D)"""


class SqlError(Exception):
    """A statement could not run; the message is one line, for the analyst."""


@dataclass(frozen=True)
class Rows:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def missing_warehouse(path: Path | str) -> str:
    return (
        f"no warehouse at {path}: run a sync first (hoop-sessions backfill --start YYYY-MM-DD "
        "--end YYYY-MM-DD, or hoop-sessions demo), or set HOOP_DATA_DIR to the data directory "
        "that holds warehouse.duckdb"
    )


def one_line(exc: BaseException) -> str:
    """DuckDB's message up to its first blank line: the error and its hint, not the caret."""
    text = str(exc).strip()
    head = text.split("\n\n", 1)[0]
    return " ".join(line.strip() for line in head.splitlines() if line.strip()) or repr(exc)


def run_sql(
    target: Path | Settings, sql: str, *, lock_timeout: float = 300.0, params: Sequence[object] = ()
) -> Rows:
    """Run ``sql`` on a read-only connection opened for it and closed before returning.

    ``target`` is a warehouse file, or the settings whose published warehouse is read (a local
    file, or one attached from the object store). A load holding a local file is waited for (up to
    ``lock_timeout``), as by every reader.
    """
    if isinstance(target, Path) and not target.is_file():
        raise SqlError(missing_warehouse(target))
    try:
        opened = (
            published.connect(target)
            if isinstance(target, Settings)
            else warehouse.connect(target, read_only=True, lock_timeout=lock_timeout)
        )
        with opened as con:
            cursor = con.execute(sql, list(params)) if params else con.execute(sql)
            if cursor.description is None:
                return Rows((), [])
            columns = tuple(str(d[0]) for d in cursor.description)
            return Rows(columns, cursor.fetchall())
    except duckdb.Error as exc:
        raise SqlError(one_line(exc)) from None
    except HoopSessionsError as exc:
        raise SqlError(str(exc)) from None


def statement_complete(text: str) -> bool:
    """Whether ``text`` ends a statement: its last character outside quotes and comments is ';'."""
    last = ""
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            i += 1
            continue
        if ch in "'\"":
            quote = ch
            last = ch
        elif text.startswith("--", i):
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0:
                return False
            i = close + 2
            continue
        elif not ch.isspace():
            last = ch
        i += 1
    return not quote and last == ";"


class Shell:
    """The interactive (or piped) SQL shell; ``echo_error`` prints one line to standard error."""

    def __init__(
        self, path: Path | Settings, *, lock_timeout: float, fmt: str, vertical: bool
    ) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self.fmt = fmt
        self.vertical = vertical
        self.failed = 0
        self.buffer: list[str] = []  # the lines of the statement being read

    def error(self, message: str) -> None:
        self.failed += 1
        click.echo(f"Error: {message}", err=True)

    def run(self, lines: Iterable[str]) -> None:
        """Run the statements and dot commands of ``lines`` until they end or ``.quit``.

        A line ``CANCEL`` drops the statement being typed.
        """
        for line in lines:
            if line == CANCEL:
                self.buffer.clear()
            elif not self.buffer and line.strip().startswith("."):
                if not self.command(line.strip()):
                    return
            elif self.buffer or line.strip():
                self.buffer.append(line)
                text = "\n".join(self.buffer)
                if statement_complete(text):
                    self.buffer.clear()
                    self.execute(text)
        if "\n".join(self.buffer).strip():
            self.execute("\n".join(self.buffer))  # the last statement of a file may lack its ';'
        self.buffer.clear()

    def execute(self, sql: str, params: Sequence[object] = ()) -> None:
        try:
            result = run_sql(self.path, sql, lock_timeout=self.lock_timeout, params=params)
        except SqlError as exc:
            self.error(str(exc))
            return
        if result.columns:
            caption = f"{len(result.rows)} row(s)" if self.fmt == "table" else None
            print_rows(
                result.columns, result.rows, fmt=self.fmt, vertical=self.vertical, caption=caption
            )

    def command(self, line: str) -> bool:
        """Run a dot command; False to leave the shell."""
        name, _, arg = line.partition(" ")
        arg = arg.strip().rstrip(";").strip()
        if name in (".quit", ".exit", ".q"):
            return False
        if name == ".help":
            click.echo(HELP.format(fmt=self.fmt))
        elif name == ".tables":
            self.execute(
                "SELECT table_name AS name, lower(replace(table_type, 'BASE ', '')) AS kind "
                "FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name"
            )
        elif name == ".schema":
            self.schema(arg)
        elif name in (".format", ".mode"):
            if arg not in FORMATS:
                self.error(f".format takes one of {', '.join(FORMATS)}, not {arg!r}")
            else:
                self.fmt = arg
        elif name == ".vertical":
            if arg not in ("on", "off"):
                self.error(f".vertical takes on or off, not {arg!r}")
            else:
                self.vertical = arg == "on"
        else:
            self.error(f"unknown command {name}; .help lists them")
        return True

    def schema(self, table: str) -> None:
        sql = (
            "SELECT {pick} column_name AS column, data_type AS type, is_nullable AS nullable "
            "FROM information_schema.columns WHERE table_schema = 'main' {where} "
            "ORDER BY table_name, ordinal_position"
        )
        if not table:
            self.execute(sql.format(pick='table_name AS "table",', where=""))
            return
        try:
            found = run_sql(
                self.path,
                sql.format(pick="", where="AND table_name = ?"),
                lock_timeout=self.lock_timeout,
                params=[table],
            )
        except SqlError as exc:
            self.error(str(exc))
            return
        if not found.rows:
            self.error(f"no table or view named {table!r}; .tables lists them")
            return
        print_rows(found.columns, found.rows, fmt=self.fmt, vertical=self.vertical)


def _history_file() -> Path:
    # Queries can name people and hosts: kept with the user's other state, owner-only.
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "hoop-sessions" / "sql_history"


def _interactive(shell: Shell) -> None:
    try:
        import readline  # line editing and history for input(), where the platform has it
    except ImportError:
        readline = None  # type: ignore[assignment]
    history = _history_file()
    if readline is not None:
        with contextlib.suppress(OSError):  # no history yet
            readline.read_history_file(history)
    where = published.location(shell.path) if isinstance(shell.path, Settings) else shell.path
    click.echo(f"hoop-sessions sql on {where} (read-only). .help for help; .quit to leave.")

    def lines() -> Iterable[str]:
        while True:
            try:
                yield input(CONTINUE if shell.buffer else PROMPT)
            except EOFError:
                click.echo()
                return
            except KeyboardInterrupt:  # drops the statement being typed, as psql does
                click.echo()
                yield CANCEL

    try:
        shell.run(lines())
    finally:
        if readline is not None:
            with contextlib.suppress(OSError):  # a read-only home keeps no history
                history.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                readline.set_history_length(2000)
                readline.write_history_file(history)
                history.chmod(0o600)


@click.command("sql")
@click.argument("statement", required=False)
@FORMAT
@VERTICAL
def sql_command(statement: str | None, fmt: str, vertical: bool) -> None:
    """Run read-only SQL on the warehouse: one STATEMENT, or a shell without one.

    The shell reads statements ending with ';' (several lines each) from the terminal, or from
    standard input without prompts when it is a pipe; .help lists its dot commands (.tables,
    .schema TABLE, .format csv, .quit). Each statement opens the warehouse read-only and closes
    it after, so a load never waits for the shell.
    """
    settings = Settings.from_env()
    if not published.exists(settings):
        raise click.ClickException(missing_warehouse(published.location(settings)))
    if statement is not None:
        try:
            result = run_sql(settings, statement)
        except SqlError as exc:
            raise click.ClickException(str(exc)) from None
        if result.columns:
            print_rows(result.columns, result.rows, fmt=fmt, vertical=vertical)
        return
    shell = Shell(settings, lock_timeout=settings.lock_timeout_seconds, fmt=fmt, vertical=vertical)
    if sys.stdin.isatty():
        _interactive(shell)
    else:
        shell.run(line.rstrip("\n") for line in sys.stdin)
        if shell.failed:
            sys.exit(1)
