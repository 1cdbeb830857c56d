"""`GET /api/sessions`: option parsing with the gateway's exact errors, filters and paging."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from . import catalog
from .config import TokenIdentity
from .dataset import Dataset
from .lifecycle import state_at
from .plan import SessionPlan
from .timefmt import US, day_of, parse_bound

MAX_LIMIT = 100
MAX_OFFSET = 10_000
COUNT_CAP = 10_000
COUNT_MODES = ("capped", "exact", "none")
_INT = re.compile(r"[+-]?[0-9]+")
_INT64 = 2**63


class OptionError(Exception):
    """A list option the caller can fix: 422 (or, on the legacy gateway, a database 500)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ListQuery:
    user: str = "%"
    connection: str = "%"
    type: str = "%"
    review_status: str = "%"
    review_approver: str | None = None
    batch_id: str | None = None
    correlation_id: str | None = None
    jira_keys: tuple[str, ...] = ()
    start_us: int | None = None
    end_us: int | None = None
    limit: int = 20
    offset: int = 0
    count: str = "capped"


def go_quote(value: str) -> str:
    """Go's %q for the printable strings a query string carries."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _atoi(value: str) -> int | None:
    """Go's strconv.Atoi: an optional sign and digits, within int64."""
    if not _INT.fullmatch(value):
        return None
    number = int(value)
    return number if -_INT64 <= number < _INT64 else None


def _invalid(option: str, reason: str) -> OptionError:
    return OptionError(f"failed listing sessions, invalid {go_quote(option)} option: {reason}")


def parse_list_query(params: Mapping[str, list[str]], *, legacy: bool, now_us: int) -> ListQuery:
    """The gateway's option set for a query string (first value of each key wins)."""
    values = {k: v[0] for k, v in params.items() if v}
    opts: dict[str, object] = {}
    for key, attr in (
        ("user", "user"),
        ("connection", "connection"),
        ("type", "type"),
        ("review.status", "review_status"),
    ):
        if key in values:
            opts[attr] = values[key]
    if "review.approver" in values:
        opts["review_approver"] = values["review.approver"]
    if "batch_id" in values:
        opts["batch_id"] = values["batch_id"]
    if values.get("correlation_id"):
        opts["correlation_id"] = values["correlation_id"]
    if "jira_issue_key" in values:
        opts["jira_keys"] = tuple(k.strip().lower() for k in values["jira_issue_key"].split(","))
    for key in ("start_date", "end_date"):
        if key in values:
            bound = parse_bound(values[key])
            if bound is None:
                if legacy:
                    raise OptionError(
                        "failed listing sessions, start_date or end_date in wrong format"
                    )
                raise _invalid(key, "start_date or end_date in wrong format")
            opts[key.replace("_date", "_us")] = bound
    opts.update(_paging(values, legacy=legacy))
    if "start_us" in opts and "end_us" not in opts:
        opts["end_us"] = now_us - now_us % US  # "until now", at whole-second precision
    elif "start_us" not in opts:
        opts.pop("end_us", None)  # end_date alone is ignored
    return ListQuery(**opts)  # type: ignore[arg-type]


def _paging(values: Mapping[str, str], *, legacy: bool) -> dict[str, object]:
    out: dict[str, object] = {}
    if legacy:
        # Before 1.144 the strconv error was discarded (0) and Postgres refused negatives.
        for key in ("limit", "offset"):
            if key in values:
                number = _atoi(values[key]) or 0
                if number < 0:
                    raise OptionError("failed listing sessions (v2)", status=500)
                out[key] = min(number, MAX_LIMIT) if key == "limit" else number
        return out
    if "limit" in values:
        limit = _atoi(values["limit"])
        if limit is None:
            raise _invalid("limit", f"{go_quote(values['limit'])} is not a number")
        if limit < 1:
            raise _invalid("limit", f"must be at least 1, got {limit}")
        out["limit"] = min(limit, MAX_LIMIT)
    if "offset" in values:
        offset = _atoi(values["offset"])
        if offset is None:
            raise _invalid("offset", f"{go_quote(values['offset'])} is not a number")
        if offset < 0:
            raise _invalid("offset", f"must not be negative, got {offset}")
        if offset > MAX_OFFSET:
            raise _invalid(
                "offset",
                f"must not be greater than {MAX_OFFSET}, got {offset}; "
                "narrow the result set with a filter instead of paginating deeper",
            )
        out["offset"] = offset
    if "count" in values:
        if values["count"] not in COUNT_MODES:
            raise _invalid(
                "count",
                f"unknown count mode {go_quote(values['count'])}, want one of capped, exact, none",
            )
        out["count"] = values["count"]
    return out


@lru_cache(maxsize=512)
def like(pattern: str) -> Callable[[str], bool]:
    """SQL LIKE (case-sensitive, `%` and `_` wildcards, backslash escapes) as a matcher."""
    if pattern == "%":
        return lambda _: True
    out = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    regex = re.compile("".join(out), re.DOTALL)
    return lambda value: regex.fullmatch(value) is not None


def _review_groups(plan: SessionPlan) -> set[str]:
    return set() if plan.review is None else {g.group for g in plan.review.groups}


def visible_to(identity: TokenIdentity) -> Callable[[SessionPlan], bool]:
    """Admins and auditors see all; anyone else their own sessions and those they may review."""
    if identity.sees_everything:
        return lambda _: True
    groups = set(identity.groups)
    return lambda p: p.user.subject == identity.subject or bool(_review_groups(p) & groups)


def _filters(q: ListQuery, identity: TokenIdentity) -> list[Callable[[SessionPlan, int], bool]]:
    filters: list[Callable[[SessionPlan, int], bool]] = []
    if not identity.sees_everything:
        visible = visible_to(identity)
        filters.append(lambda p, _now: visible(p))
    if q.user != "%":
        match_user = like(q.user)
        filters.append(lambda p, _now: match_user(p.user.subject))
    if q.connection != "%":
        match_connection = like(q.connection)
        filters.append(lambda p, _now: match_connection(p.connection.name))
    if q.type != "%":
        match_type = like(q.type)
        filters.append(lambda p, _now: match_type(p.connection.type))
    if q.review_status != "%":
        match_status = like(q.review_status)
        filters.append(lambda p, now: match_status(state_at(p, now).review_status or ""))
    if q.review_approver is not None:
        approver = catalog.USERS_BY_EMAIL.get(q.review_approver)
        approver_groups = set(approver.groups) if approver is not None else set()
        filters.append(lambda p, _now: bool(_review_groups(p) & approver_groups))
    if q.batch_id is not None:
        batch_id = q.batch_id
        filters.append(lambda p, _now: p.batch_id == batch_id)
    if q.correlation_id is not None:
        correlation_id = q.correlation_id
        filters.append(lambda p, _now: p.correlation_id == correlation_id)
    if q.jira_keys:
        keys = set(q.jira_keys)
        filters.append(
            lambda p, _now: (
                p.integrations is not None and p.integrations["jira_issue_key"].lower() in keys
            )
        )
    return filters


@dataclass(frozen=True)
class Page:
    rows: list[SessionPlan]
    matched: int | None  # how many matched in all (None when not counted)
    has_more: bool  # a row exists after this page


def select(
    ds: Dataset, q: ListQuery, identity: TokenIdentity, now_us: int, *, legacy: bool
) -> Page:
    """The page of sessions for a query, newest first, as the gateway's SQL would return it."""
    low = q.start_us if q.start_us is not None else None
    high = now_us if q.end_us is None else min(q.end_us, now_us)  # later sessions do not exist
    spans = list(_spans(ds, low, high))
    filters = _filters(q, identity)
    if ds.cfg.newer_gateway:  # a sidecar's back-dated rows exist only once it sent them
        filters.append(lambda p, now: p.visible_from_us <= now)
    want = q.limit + 1
    if not filters:
        matched = sum(j - i for _, i, j in spans)
        rows = _slice(spans, q.offset, want)
    else:
        matching = (
            p for plans, i, j in spans for p in plans[i:j] if all(f(p, now_us) for f in filters)
        )
        if q.count == "none" and not legacy:
            rows = list(_islice(matching, q.offset, want))
            matched = None
        else:
            everything = list(matching)
            matched = len(everything)
            rows = everything[q.offset : q.offset + want]
    return Page(rows=rows[: q.limit], matched=matched, has_more=len(rows) > q.limit)


def _spans(ds: Dataset, low: int | None, high: int) -> Iterator[tuple[list[SessionPlan], int, int]]:
    """(day plans, i, j) for each simulated day in the window, newest day first."""
    first = ds.cfg.start if low is None else max(ds.cfg.start, day_of(low))
    last = min(ds.cfg.end - timedelta(days=1), day_of(high))
    day: date = last
    while day >= first:
        index = ds.day(day)
        i, j = index.span(low if low is not None else 0, high)
        if j > i:
            yield index.plans, i, j
        day -= timedelta(days=1)


def _slice(
    spans: list[tuple[list[SessionPlan], int, int]], offset: int, count: int
) -> list[SessionPlan]:
    out: list[SessionPlan] = []
    for plans, i, j in spans:
        size = j - i
        if offset >= size:
            offset -= size
            continue
        take = plans[i + offset : min(j, i + offset + count - len(out))]
        out.extend(take)
        offset = 0
        if len(out) >= count:
            break
    return out


def _islice(items: Iterator[SessionPlan], offset: int, count: int) -> Iterator[SessionPlan]:
    for index, item in enumerate(items):
        if index >= offset + count:
            return
        if index >= offset:
            yield item
