"""The simulated gateway's database: session plans by day and by id, rendered at a clock.

`Dataset(cfg)` is cheap: a day is generated the first time something asks for it. Rendered
list rows and get bodies are cached per clock value, so serving a page is mostly a join.
"""

from __future__ import annotations

import bisect
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import orjson

from .config import MIB, SimulatorConfig, as_utc
from .lifecycle import SessionState, state_at
from .plan import SessionPlan, day_mask, day_of_id, generate_day
from .render import (
    STREAM_MODES,
    Body,
    EncodedStream,
    StreamFormatError,
    encode_large,
    encode_small,
    get_body,
    large_stored_size,
    list_row,
    record,
)
from .seeds import seeded
from .streams import Event, LargeStream, raw_stream_json, rdp_metrics, small_events
from .timefmt import to_us
from .violations import PREDICATES, Grants, Observed, grant_of, violations_of

DEFAULT_EXPAND = "event_stream,session_input"
_CACHEABLE_BODY = 512 * 1024


@dataclass
class DayIndex:
    """One day's sessions in list order: start_date DESC, id DESC."""

    plans: list[SessionPlan]
    neg_starts: list[int] = field(init=False)  # ascending, for bisect
    by_id: dict[str, SessionPlan] = field(init=False)

    def __post_init__(self) -> None:
        self.plans.sort(key=lambda p: (p.start_us, p.id), reverse=True)
        self.neg_starts = [-p.start_us for p in self.plans]
        self.by_id = {p.id: p for p in self.plans}

    def span(self, low_us: int, high_us: int) -> tuple[int, int]:
        """Positions of the sessions with low_us <= start <= high_us."""
        return (
            bisect.bisect_left(self.neg_starts, -high_us),
            bisect.bisect_right(self.neg_starts, -low_us),
        )


class _Bounded(dict[Any, Any]):
    """A cache that forgets everything once its values weigh more than `limit` bytes.

    Entries are keyed by the clock, so when the clock moves they go stale together and
    wholesale eviction loses little; it also keeps the bound cheap to enforce.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.weight = 0

    def put(self, key: Any, value: Any, weight: int) -> None:
        if self.weight + weight > self.limit:
            self.clear()
            self.weight = 0
        self[key] = value
        self.weight += weight


class _Oldest(OrderedDict[Any, Any]):
    """A cache that forgets its oldest entries once its values weigh more than `limit` bytes.

    For values that do not depend on the clock (a session's recorded stream): a sync lists a
    day and then gets its sessions, so the streams it is about to use are the newest ones, and
    they survive a day bigger than the cache. A value heavier than `limit // 8` is not kept
    (it would push out many others), and is simply generated again when asked for.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.weight = 0
        self._weights: dict[Any, int] = {}

    def put(self, key: Any, value: Any, weight: int) -> None:
        if weight > self.limit // 8:
            return
        self.weight -= self._weights.pop(key, 0)
        while self and self.weight + weight > self.limit:
            oldest, _ = self.popitem(last=False)
            self.weight -= self._weights.pop(oldest, 0)
        self[key] = value
        self._weights[key] = weight
        self.weight += weight


class Dataset:
    """Every session of the simulated days. A pure function of the config and the clock."""

    def __init__(self, cfg: SimulatorConfig) -> None:
        self.cfg = cfg
        self.org_id = str(
            uuid.UUID(int=seeded(f"hoop-sim/org/{cfg.seed}").getrandbits(128), version=4)
        )
        self._mask = day_mask(cfg.seed)
        self._days: dict[date, DayIndex] = {}
        self._lock = threading.Lock()
        # Small streams, by session id: (events, raw JSON). Their sizes are kept apart, for
        # every session (an int each), so that list rows never regenerate a stream for it.
        self._events = _Oldest(32 * MIB)
        self._sizes: dict[str, int] = {}
        self._large: dict[str, LargeStream] = {}
        self._rows = _Bounded(48 * MIB)
        self._bodies = _Bounded(64 * MIB)
        self._grants: tuple[int, Grants] | None = None

    # --- the sessions ---------------------------------------------------------------------

    def days(self) -> list[date]:
        return [self.cfg.start + timedelta(days=i) for i in range(self.cfg.days)]

    def day(self, day: date) -> DayIndex:
        index = self._days.get(day)
        if index is None:
            with self._lock:
                index = self._days.get(day)
                if index is None:
                    in_range = self.cfg.start <= day < self.cfg.end
                    index = DayIndex(generate_day(self.cfg, day) if in_range else [])
                    self._days[day] = index
        return index

    def plan(self, session_id: str) -> SessionPlan | None:
        day = day_of_id(session_id, self._mask)
        if day is None or not self.cfg.start <= day < self.cfg.end:
            return None
        return self.day(day).by_id.get(session_id)

    def session_ids(self, day: date, *, now: datetime | None = None) -> list[str]:
        """The ids of the sessions started on `day` that exist at `now`, in list order."""
        now_us = self.now_us(now)
        return [p.id for p in self.day(day).plans if p.visible_from_us <= now_us]

    def now_us(self, now: datetime | None = None) -> int:
        return to_us(as_utc(now) if now is not None else self.cfg.clock)

    # --- state and streams ----------------------------------------------------------------

    def state(self, plan: SessionPlan, now_us: int) -> SessionState:
        return state_at(plan, now_us)

    def events(self, plan: SessionPlan) -> tuple[Event, ...]:
        """The whole recorded stream of a session with a small stream."""
        return self._recorded(plan)[0]

    def _recorded(self, plan: SessionPlan) -> tuple[tuple[Event, ...], bytes]:
        """A small stream's events and the raw JSON the gateway stores for them."""
        recorded = self._events.get(plan.id)
        if recorded is None:
            events = small_events(plan.stream, plan.script, plan.user.email)
            recorded = (events, raw_stream_json(events))
            self._events.put(plan.id, recorded, 2 * len(recorded[1]) + 100 * len(events))
            self._sizes[plan.id] = len(recorded[1])
        return recorded

    def large_stream(self, plan: SessionPlan) -> LargeStream:
        stream = self._large.get(plan.id)
        if stream is None:
            stream = self._large[plan.id] = LargeStream(plan.stream)
        return stream

    def stored_size(self, plan: SessionPlan) -> int:
        """`metrics.event_size` once the session is closed: the bytes of the stored raw JSON."""
        kind = plan.stream.kind
        if kind == "none" or plan.ending == "restart":
            return 0
        if kind == "large":
            return large_stored_size(self.large_stream(plan))
        size = self._sizes.get(plan.id)
        return len(self._recorded(plan)[1]) if size is None else size

    def rdp_metrics(self, plan: SessionPlan) -> dict[str, Any] | None:
        if plan.stream.kind != "rdp":
            return None
        return rdp_metrics(self.events(plan), self.stored_size(plan))

    def visible_events(self, plan: SessionPlan, state: SessionState) -> Sequence[Event]:
        """The events stored at this state: none before the client connects, then what has been
        flushed (every 50 s) while it runs, then all of them."""
        if not state.has_stream or plan.stream.kind == "large":
            return ()
        events = self.events(plan)
        if state.cutoff_us is None:
            return events
        return tuple(e for e in events if e.elapsed_us <= state.cutoff_us)

    def _encode(self, plan: SessionPlan, state: SessionState, mode: str | None) -> EncodedStream:
        stored = self.stored_size(plan)
        if plan.stream.kind == "large":
            return encode_large(self.large_stream(plan), state.cutoff_us, mode, stored)
        # A closed session's raw stream is the stored JSON itself. Both come from one lookup:
        # a stream too big for the cache is generated once per response, not twice.
        events, stored_json = self._recorded(plan)
        raw: bytes | None = stored_json
        if state.cutoff_us is not None:
            cutoff = state.cutoff_us
            events, raw = tuple(e for e in events if e.elapsed_us <= cutoff), None
        return encode_small(plan, events, mode, stored, raw=raw)

    # --- rendering ------------------------------------------------------------------------

    def list_row(self, plan: SessionPlan, now_us: int) -> bytes:
        key = (plan.id, now_us)
        row = self._rows.get(key)
        if row is None:
            state = state_at(plan, now_us)
            obj = record(
                plan,
                state,
                self.org_id,
                list_row=True,
                stored_size=self.stored_size(plan),
                rdp_metrics=self.rdp_metrics(plan) if state.finished else None,
            )
            row = list_row(obj)
            self._rows.put(key, row, len(row))
        return row

    def get_body(
        self,
        plan: SessionPlan,
        now_us: int,
        *,
        expand: str = DEFAULT_EXPAND,
        event_stream: str = "",
        stream_allowed: bool = True,
    ) -> bytes | Body:
        """The body of `GET /api/sessions/{id}` with these `expand` and `event_stream` values.

        Raises StreamFormatError when the gateway answers with an error status instead.
        `stream_allowed` is false for a caller who may see the record but not the stream.
        """
        key = (plan.id, now_us, expand, event_stream, stream_allowed)
        cached = self._bodies.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        state = state_at(plan, now_us)
        expanded = expand.split(",")
        encoded = None
        event_size = None
        if stream_allowed and "event_stream" in expanded and state.has_stream:
            mode = event_stream or None
            if mode is not None and mode not in STREAM_MODES:
                raise StreamFormatError(422, "event_stream attribute has an unknown type format")
            encoded = self._encode(plan, state, mode)
            if mode is not None:
                event_size = encoded.size
        # Quirk: the input is loaded without `expand`, or when `expand` names it.
        script = plan.script if expand == "" or "session_input" in expanded else ""
        obj = record(
            plan,
            state,
            self.org_id,
            list_row=False,
            script=script,
            stream=encoded is not None,
            stored_size=self.stored_size(plan),
            event_size=event_size,
            rdp_metrics=self.rdp_metrics(plan) if state.finished else None,
        )
        body = get_body(obj, encoded)
        if isinstance(body, bytes) and len(body) <= _CACHEABLE_BODY:
            self._bodies.put(key, body, len(body))
        return body

    def record(
        self,
        session_id: str,
        *,
        now: datetime | None = None,
        expand: str = DEFAULT_EXPAND,
        event_stream: str = "",
    ) -> dict[str, Any]:
        """The session as the gateway's get returns it to an admin, parsed."""
        plan = self.plan(session_id)
        now_us = self.now_us(now)
        if plan is None or plan.visible_from_us > now_us:
            raise KeyError(session_id)
        body = self.get_body(plan, now_us, expand=expand, event_stream=event_stream)
        data = body if isinstance(body, bytes) else body.join()
        return orjson.loads(data)  # type: ignore[no-any-return]

    # --- ground truth ---------------------------------------------------------------------

    def grants(self, now_us: int) -> Grants:
        """The JIT grants shown by every session that exists at `now_us`."""
        cached = self._grants
        if cached is not None and cached[0] == now_us:
            return cached[1]
        found = []
        for day in self.days():
            for plan in self.day(day).plans:
                if plan.review is not None and plan.visible_from_us <= now_us:
                    grant = grant_of(plan, state_at(plan, now_us))
                    if grant is not None:
                        found.append(grant)
        grants = Grants(found)
        self._grants = (now_us, grants)
        return grants

    def observed(self, plan: SessionPlan, now_us: int, grants: Grants | None = None) -> Observed:
        state = state_at(plan, now_us)
        readable = plan.stream.kind not in ("undecodable", "large")
        covering = (grants or self.grants(now_us)).covering(plan)
        events = self.visible_events(plan, state) if readable else ()
        return Observed(plan, state, events, now_us, covering)

    def planted(self, now: datetime | None = None) -> dict[str, set[str]]:
        """Violation name -> ids of the sessions that show it at `now` (see violations.py)."""
        now_us = self.now_us(now)
        grants = self.grants(now_us)
        found: dict[str, set[str]] = {name: set() for name in PREDICATES}
        for day in self.days():
            for plan in self.day(day).plans:
                if plan.visible_from_us <= now_us:
                    for name in violations_of(self.observed(plan, now_us, grants)):
                        found[name].add(plan.id)
        return found
