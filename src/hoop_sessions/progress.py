"""Progress of long work: a live bar on a terminal, plain log lines elsewhere (and in Dagster)."""

from __future__ import annotations

import logging
import time
from datetime import date
from typing import NotRequired, Protocol, TypedDict

log = logging.getLogger("hoop_sessions.progress")


class DaySummary(TypedDict):
    """What one day amounts to, for progress lines and the report.

    ``DayResult.summary`` gives every key; a day only read from hoop, not built (``_extract_days``),
    gives the first three alone.
    """

    sessions_listed: int
    requests: int
    retries: int
    day: NotRequired[str]
    # False when nothing changed since the last sync: the day was not built or loaded again.
    changed: NotRequired[bool]
    # None when the day was not built again (``changed`` is false).
    sessions_loaded: NotRequired[int | None]
    sessions_rejected: NotRequired[int | None]
    sessions_reused: NotRequired[int]
    # False for a day not listed again: only its sessions not final were read, by id.
    listed_again: NotRequired[bool]
    # Rows loaded per warehouse table.
    rows: NotRequired[dict[str, int]]


class Progress(Protocol):
    # ``listed`` is false for a day not listed again: ``sessions`` are those listed before.
    def day_listed(self, day: date, sessions: int, *, listed: bool = True) -> None: ...
    def session_fetched(self, day: date) -> None: ...
    def day_done(self, day: date, summary: DaySummary) -> None: ...


class NullProgress:
    def day_listed(self, day: date, sessions: int, *, listed: bool = True) -> None:
        pass

    def session_fetched(self, day: date) -> None:
        pass

    def day_done(self, day: date, summary: DaySummary) -> None:
        pass


class _Figures:
    def __init__(self, days_total: int) -> None:
        self.days_total = days_total
        self.days_done = 0
        self.sessions_done = 0
        # Days being read (several at once): [sessions listed, sessions read] of each.
        self.reading: dict[date, list[int]] = {}
        self.requests = 0
        self.retries = 0
        self.started = time.monotonic()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.requests / elapsed
        # Days are pipelined: the next day can be read in full before the previous one is done.
        done_fraction = min((self.days_done + self._day_fraction()) / max(self.days_total, 1), 1.0)
        eta = elapsed * (1 - done_fraction) / done_fraction if done_fraction > 0 else float("nan")
        eta_text = f"{eta:.0f} s" if eta == eta else "?"
        return (
            f"days {self.days_done}/{self.days_total}, sessions {self.sessions_done}, "
            f"{rate:.0f} requests/s, {self.retries} retries, ETA {eta_text}"
        )

    def listed(self, day: date, sessions: int) -> None:
        self.reading[day] = [sessions, 0]

    def fetched(self, day: date) -> int:
        """Count one session of ``day`` read; the number read of that day so far."""
        self.sessions_done += 1
        counts = self.reading.setdefault(day, [0, 0])
        counts[1] += 1
        return counts[1]

    def done(self, day: date, summary: DaySummary) -> None:
        self.reading.pop(day, None)
        self.days_done += 1
        self.requests += int(summary.get("requests", 0))
        self.retries += int(summary.get("retries", 0))

    def _day_fraction(self) -> float:
        return sum(min(read / listed, 1.0) for listed, read in self.reading.values() if listed)


class LogProgress:
    """Plain log lines at most every ``every`` seconds and at the end of each day."""

    def __init__(
        self, days_total: int, *, logger: logging.Logger | None = None, every: float = 10.0
    ):
        self.figures = _Figures(days_total)
        self.logger = logger or log
        self.every = every
        self._last = time.monotonic()

    def day_listed(self, day: date, sessions: int, *, listed: bool = True) -> None:
        self.figures.listed(day, sessions)
        if listed:
            self.logger.info("%s: %d sessions listed", day, sessions)
        else:
            self.logger.info(
                "%s: not listed again; its open sessions of %d are read by id", day, sessions
            )

    def session_fetched(self, day: date) -> None:
        self.figures.fetched(day)
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.logger.info("%s: %s", day, self.figures.line())

    def day_done(self, day: date, summary: DaySummary) -> None:
        f = self.figures
        f.done(day, summary)
        if "sessions_loaded" not in summary:
            self.logger.info(
                "%s read: %s sessions listed; %s", day, summary.get("sessions_listed"), f.line()
            )
            return
        if summary.get("changed") is False:
            self.logger.info("%s done: nothing changed since the last sync; %s", day, f.line())
            return
        self.logger.info(
            "%s done: %s loaded, %s rejected, %s unchanged; %s",
            day,
            summary.get("sessions_loaded"),
            summary.get("sessions_rejected"),
            summary.get("sessions_reused", 0),
            f.line(),
        )


class RichProgress(LogProgress):
    """A live progress bar on a terminal (rich, on standard error); a line per day above it."""

    def __init__(self, days_total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        super().__init__(days_total, every=3600.0)
        self._bar = Bar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[figures]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task = self._bar.add_task("sync", total=days_total, figures="")
        self._completed = 0.0
        self._bar.start()

    def day_listed(self, day: date, sessions: int, *, listed: bool = True) -> None:
        self.figures.listed(day, sessions)
        self._refresh()

    def session_fetched(self, day: date) -> None:
        if self.figures.fetched(day) % 50 == 0:
            self._refresh()

    def day_done(self, day: date, summary: DaySummary) -> None:
        f = self.figures
        f.done(day, summary)
        what = (
            f"{summary.get('sessions_listed')} sessions listed"
            if summary.get("listed_again", True)
            else f"not listed again, {summary.get('sessions_listed')} sessions as listed before"
        )
        self._bar.console.print(f"{day}: {what}; {f.line()}")
        self._refresh()

    def _refresh(self) -> None:
        """The label names the earliest day still in progress (several are read at once), and the
        bar never moves backwards when a later day is listed before an earlier one is done."""
        f = self.figures
        self._completed = max(self._completed, f.days_done + f._day_fraction())
        label = str(min(f.reading)) if f.reading else "sync"
        self._bar.update(self._task, description=label, completed=self._completed, figures=f.line())

    def close(self) -> None:
        self._bar.stop()
