"""What a session looks like at a given time: the clock applied to a plan.

The gateway has no history: a get returns the current row. So the state is a pure function of
(plan, now), and moving the clock forward finishes sessions, decides reviews and grows streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .catalog import User
from .plan import GroupPlan, SessionPlan
from .timefmt import US

# Open sessions have their stream appended about every 50 seconds.
FLUSH_US = 50 * US


@dataclass(frozen=True, slots=True)
class GroupState:
    plan: GroupPlan
    status: str
    reviewer: User | None
    reviewed_us: int | None


@dataclass(frozen=True, slots=True)
class ReviewState:
    status: str
    revoke_at_us: int | None
    groups: tuple[GroupState, ...]


@dataclass(frozen=True, slots=True)
class SessionState:
    status: str
    end_us: int | None
    exit_code: int | None
    review: ReviewState | None
    finished: bool  # the recorded run is over: metrics and the whole stream are stored
    has_stream: bool  # a stream row exists (the event_stream key can be shown)
    cutoff_us: int | None  # events up to this elapsed time are stored; None: all of them
    metadata: dict[str, Any] | None

    @property
    def review_status(self) -> str | None:
        return None if self.review is None else self.review.status


def state_at(plan: SessionPlan, now_us: int) -> SessionState:
    running = plan.connect_us is not None and plan.connect_us <= now_us
    finished = running and plan.end_us is not None and plan.end_us <= now_us
    review = _review_state(plan, now_us, running=running, finished=finished)
    review_status = None if review is None else review.status
    if review_status in ("REJECTED", "REVOKED"):
        status = "done"
    elif review_status == "PENDING":
        status = "open"
    elif review_status == "APPROVED" and not running:
        status = "ready"
    else:
        status = "done" if finished else "open"
    # Sessions stopped through review never get an end date or an exit code.
    closed = finished and review_status not in ("REJECTED", "REVOKED", "PENDING")
    cutoff = None
    if running and not finished and plan.connect_us is not None:
        cutoff = (now_us - plan.connect_us) // FLUSH_US * FLUSH_US
    metadata = plan.metadata
    if plan.metadata_edit is not None and plan.metadata_edit[0] <= now_us:
        metadata = plan.metadata_edit[1]
    return SessionState(
        status=status,
        end_us=plan.end_us if closed else None,
        exit_code=plan.exit_code if closed else None,
        review=review,
        finished=finished,
        has_stream=running and plan.stream.kind != "none",
        cutoff_us=cutoff,
        metadata=metadata,
    )


def _review_state(
    plan: SessionPlan, now_us: int, *, running: bool, finished: bool
) -> ReviewState | None:
    review = plan.review
    if review is None:
        return None
    groups = tuple(_group_state(g, now_us) for g in review.groups)
    if review.decided_us is None or now_us < review.decided_us:
        return ReviewState("PENDING", None, groups)
    if review.outcome == "rejected":
        return ReviewState("REJECTED", None, groups)
    if review.revoked_us is not None and now_us >= review.revoked_us:
        return ReviewState("REVOKED", review.revoked_us, groups)
    if review.type == "jit":
        return ReviewState("APPROVED", review.decided_us + review.access_duration_s * US, groups)
    if finished:
        return ReviewState("EXECUTED", None, groups)
    return ReviewState("PROCESSING" if running else "APPROVED", None, groups)


def _group_state(group: GroupPlan, now_us: int) -> GroupState:
    if group.revoked_us is not None and now_us >= group.revoked_us:
        return GroupState(group, "REVOKED", group.revoked_by, group.revoked_us)
    if group.decision is None or group.decided_us is None or now_us < group.decided_us:
        return GroupState(group, "PENDING", None, None)
    return GroupState(group, group.decision, group.reviewer, group.decided_us)


def is_final(plan: SessionPlan, state: SessionState, now_us: int) -> bool:
    """The project's definition of a record that will not change any more (ARCHITECTURE.md)."""
    if state.review is None:
        return state.status == "done"
    if state.review.status in ("REJECTED", "REVOKED", "EXECUTED"):
        return True
    revoke_at = state.review.revoke_at_us
    return (
        plan.review is not None
        and plan.review.type == "jit"
        and state.review.status == "APPROVED"
        and revoke_at is not None
        and revoke_at <= now_us
    )
