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
    if review_status in ("REJECTED", "REVOKED", "EXPIRED"):
        status = "done"
    elif review_status == "PENDING":
        status = "open"
    elif review_status == "APPROVED" and not running:
        status = "ready"
    else:
        status = "done" if finished else "open"
    # Sessions stopped through review never get an end date or an exit code.
    closed = finished and review_status not in ("REJECTED", "REVOKED", "PENDING", "EXPIRED")
    cutoff = None
    if running and not finished and plan.connect_us is not None:
        cutoff = (now_us - plan.connect_us) // FLUSH_US * FLUSH_US
    elif finished and plan.ending == "restart" and plan.connect_us and plan.end_us:
        # The events after the last flush died with the gateway.
        cutoff = (plan.end_us - plan.connect_us - 1) // FLUSH_US * FLUSH_US
    # The RDP recorder writes its whole log at close: an open RDP session has no stream.
    # hoop: gateway/rdp/recorder.go (Close)
    rdp_open = plan.stream.kind == "rdp" and not finished
    metadata = plan.metadata
    if plan.metadata_edit is not None and plan.metadata_edit[0] <= now_us:
        metadata = plan.metadata_edit[1]
    return SessionState(
        status=status,
        end_us=plan.end_us if closed else None,
        exit_code=plan.exit_code if closed else None,
        review=review,
        finished=finished,
        has_stream=running and plan.stream.kind != "none" and not rdp_open,
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
    if review.outcome == "expired":  # newer gateways: a review left undecided expires
        return ReviewState("EXPIRED", None, groups)
    # Every approval sets revoke_at = approval time + access_duration, one-time reviews included
    # (their duration is 0); a manual revoke changes the status only, not revoke_at.
    # hoop: gateway/api/review/review.go (doReview, validateReviewStatusTransition)
    revoke_at = review.decided_us + review.access_duration_s * US
    if review.revoked_us is not None and now_us >= review.revoked_us:
        return ReviewState("REVOKED", revoke_at, groups)
    if review.type == "jit":
        return ReviewState("APPROVED", revoke_at, groups)
    if finished:
        return ReviewState("EXECUTED", revoke_at, groups)
    return ReviewState("PROCESSING" if running else "APPROVED", revoke_at, groups)


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
    if state.review.status in ("REJECTED", "REVOKED", "EXECUTED", "EXPIRED"):
        return True
    revoke_at = state.review.revoke_at_us
    return (
        plan.review is not None
        and plan.review.type == "jit"
        and state.review.status == "APPROVED"
        and revoke_at is not None
        and revoke_at <= now_us
    )
