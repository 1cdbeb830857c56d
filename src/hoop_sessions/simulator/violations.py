"""Compliance violations planted in the data, by name, as a sync would observe them.

Each predicate reads only what a perfect sync sees at `now` (the record of
`GET /api/sessions/{id}?expand=event_stream,session_input`), so a compliance rule written from
the README's definitions must find exactly `Dataset.planted()`. An event's time is
`start_date + elapsed`, as the warehouse computes it.

A session without a review of its own can be covered by a JIT grant (`attribute`): the gateway
lets later sessions of the grant's owner on the grant's connection through while the grant is
valid. hoop: gateway/models/reviews.go (GetApprovedReviewJit)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .lifecycle import SessionState, is_final
from .plan import SessionPlan
from .streams import Event
from .timefmt import US

LONG_SESSION_US = 4 * 3600 * US
NOT_FINAL_AFTER_US = 3 * 86_400 * US


@dataclass(frozen=True)
class Grant:
    """A JIT review as the records show it: valid from `approved_us` (revoke_at minus the
    access duration) until `end_us` (revoke_at, at the millisecond precision it is shown at).
    A manual revoke does not move revoke_at. hoop: gateway/api/review/review.go (doReview)"""

    review_id: str
    session_id: str
    user_id: str
    connection: str
    approved_us: int
    end_us: int


def grant_of(plan: SessionPlan, state: SessionState) -> Grant | None:
    review = plan.review
    if review is None or review.type != "jit" or state.review is None:
        return None
    revoke_at = state.review.revoke_at_us
    if revoke_at is None:
        return None
    end = revoke_at - revoke_at % 1000  # shown at millisecond precision
    return Grant(
        review.id,
        plan.id,
        plan.user.subject,
        plan.connection.name,
        end - review.access_duration_s * US,
        end,
    )


class Grants:
    """Every JIT grant of the synced sessions, to attribute sessions without a review."""

    def __init__(self, grants: Iterable[Grant]) -> None:
        self._by_key: dict[tuple[str, str], list[Grant]] = {}
        for grant in grants:
            self._by_key.setdefault((grant.user_id, grant.connection), []).append(grant)

    def covering(self, plan: SessionPlan) -> Grant | None:
        """The grant a session without a review runs under: same user_id and connection,
        started within [approved, revoke_at); the latest approved, then the largest review id."""
        if plan.review is not None:
            return None
        candidates = [
            g
            for g in self._by_key.get((plan.user.subject, plan.connection.name), ())
            if g.approved_us <= plan.start_us < g.end_us
        ]
        return max(candidates, key=lambda g: (g.approved_us, g.review_id), default=None)


@dataclass(frozen=True)
class Observed:
    """One session as a sync sees it at `now`."""

    plan: SessionPlan
    state: SessionState
    events: Sequence[Event]  # the events in the record ([] when the stream is absent or unreadable)
    now_us: int
    grant: Grant | None = None  # the JIT grant covering it, when it has no review of its own

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
    """JIT access only: events past the end of the session's own JIT grant or of the grant that
    covers it. A one-time review's revoke_at is its approval time and marks nothing."""
    grant = grant_of(o.plan, o.state) or o.grant
    return grant is not None and any(t > grant.end_us for t in o.event_times())


# Review statuses under which a session's access was never approved.
_UNAPPROVED = ("PENDING", "REJECTED", "EXPIRED")


PREDICATES: dict[str, Callable[[Observed], bool]] = {
    "prod_without_review": lambda o: (
        o.environment == "prod" and o.plan.review is None and o.grant is None
    ),
    "events_without_approval": lambda o: o.state.review_status in _UNAPPROVED and bool(o.events),
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
        _has_metrics(o)
        and o.plan.ending != "restart"  # its metrics were reset
        and o.plan.masking is not None
        and o.plan.masking["err_count"] > 0
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
    # A done session whose event_size is 0 while its stream holds events: a gateway restart lost
    # the events after the last flush (hoop: gateway/transport/plugins/audit/wal.go), or the
    # credential sweeper closed the record, which leaves event_size unset
    # (hoop: gateway/models/connection_credentials.go): either way the size on record does not
    # account for the stream, which the recording-gap rule reports.
    # A sidecar session the gateway reaped is closed the same way (newer gateways).
    "event_size_zero_with_stream": lambda o: (
        o.state.status == "done"
        and (o.plan.ending in ("restart", "credentials") or o.plan.reaped_us is not None)
        and bool(o.events)
    ),
}


def _has_metrics(o: Observed) -> bool:
    """The record carries metrics: closed by its client (not by the credential sweeper)."""
    return o.state.finished and o.plan.ending != "credentials" and o.plan.reaped_us is None


def violations_of(observed: Observed) -> set[str]:
    return {name for name, predicate in PREDICATES.items() if predicate(observed)}
