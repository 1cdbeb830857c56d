"""Compliance violations planted in the data, by name, as a sync would observe them.

Each predicate reads only what a perfect sync sees at `now` (the record of
`GET /api/sessions/{id}?expand=event_stream,session_input`), so a compliance rule written from
the README's definitions must find exactly `Dataset.planted()`. An event's time is
`start_date + elapsed`, as the warehouse computes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .lifecycle import SessionState, is_final
from .plan import SessionPlan
from .streams import Event
from .timefmt import US

LONG_SESSION_US = 4 * 3600 * US
NOT_FINAL_AFTER_US = 3 * 86_400 * US


@dataclass(frozen=True)
class Observed:
    """One session as a sync sees it at `now`."""

    plan: SessionPlan
    state: SessionState
    events: Sequence[Event]  # the events in the record ([] when the stream is absent or unreadable)
    now_us: int

    @property
    def environment(self) -> str | None:
        return self.plan.connection.environment

    def event_times(self) -> list[int]:
        return [self.plan.start_us + e.elapsed_us for e in self.events]


def _approved_groups(o: Observed) -> int:
    review = o.state.review
    return 0 if review is None else sum(g.status == "APPROVED" for g in review.groups)


def _outside_window(o: Observed) -> bool:
    review = o.plan.review
    window = None if review is None else review.policy.time_window
    if window is None:
        return False
    low, high = window.start_minute * 60, window.end_minute * 60
    return any(not low <= (t // US) % 86_400 < high for t in o.event_times())


def _after_revoke(o: Observed) -> bool:
    review = o.state.review
    if o.plan.review is None or o.plan.review.type != "jit" or review is None:
        return False
    if review.revoke_at_us is None:
        return False
    revoke_at = review.revoke_at_us - review.revoke_at_us % 1000  # shown at millisecond precision
    return any(t > revoke_at for t in o.event_times())


PREDICATES: dict[str, Callable[[Observed], bool]] = {
    "prod_without_review": lambda o: o.environment == "prod" and o.plan.review is None,
    "events_without_approval": lambda o: (
        o.state.review_status in ("PENDING", "REJECTED") and bool(o.events)
    ),
    "self_approval": lambda o: (
        o.state.review is not None
        and any(g.status == "APPROVED" and g.reviewer == o.plan.user for g in o.state.review.groups)
    ),
    "outside_time_window": _outside_window,
    "events_after_revoke": _after_revoke,
    "break_glass": lambda o: (
        o.state.review is not None
        and any(g.plan.forced and g.status == "APPROVED" for g in o.state.review.groups)
    ),
    "min_approvals_not_met": lambda o: (
        o.state.review_status in ("APPROVED", "PROCESSING", "EXECUTED")
        and o.plan.review is not None
        and o.plan.review.policy.min_approvals is not None
        and _approved_groups(o) < o.plan.review.policy.min_approvals
    ),
    "long_session": lambda o: (
        o.state.end_us is not None and o.state.end_us - o.plan.start_us > LONG_SESSION_US
    ),
    "failed_prod_session": lambda o: o.environment == "prod" and o.state.exit_code not in (None, 0),
    "not_final_after_3_days": lambda o: (
        o.plan.start_us < o.now_us - NOT_FINAL_AFTER_US and not is_final(o.plan, o.state, o.now_us)
    ),
    "masking_errors": lambda o: (
        o.state.finished and o.plan.masking is not None and o.plan.masking["err_count"] > 0
    ),
    "truncated_stream": lambda o: o.state.finished and o.plan.truncated,
    "machine_identity_on_prod": lambda o: (
        o.environment == "prod" and o.plan.user.machine_identity_id is not None
    ),
    "guardrail_match": lambda o: bool(o.plan.guardrails),
    "ai_high_risk": lambda o: (
        o.plan.ai_analysis is not None and o.plan.ai_analysis["risk_level"] == "high"
    ),
    "unreadable_stream": lambda o: o.state.has_stream and o.plan.stream.kind == "undecodable",
}


def violations_of(observed: Observed) -> set[str]:
    return {name for name, predicate in PREDICATES.items() if predicate(observed)}
