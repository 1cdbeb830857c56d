"""When a session's record can no longer change on the gateway: the data contract's finality.

What decides whether a day read before must be read again (``sync.ledger``, ``extract.day``)
and the ``final_from`` column the builder writes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hoop_sessions.extract.values import EPOCH, RecordRejected, parse_time

# The longest JIT access a connection can grant: a revoked or expired JIT session that is still
# connected keeps recording until the client disconnects, at the latest this long after its
# revoke_at (each session runs with a timeout of the full access duration from its own connect).
# hoop: gateway/transport/plugins/review/review.go
MAX_ACCESS = timedelta(hours=48)


# Review statuses of a request that never ran and never will (EXPIRED: newer gateways).
NEVER_RUN_REVIEW_STATUSES = frozenset({"REJECTED", "EXPIRED"})


# JIT statuses after which no new access is granted.
ENDED_JIT_STATUSES = frozenset({"REVOKED", "EXPIRED"})


def final_from(record: dict[str, Any]) -> datetime | None:
    """From when the record, as it is, can no longer change on the gateway; None: not as it is.

    The data contract's definition (README, "Finality"):
    - closed: ``done`` with an ``end_date`` (the gateway wrote its last events and metrics);
    - provably never run: its review was REJECTED (or EXPIRED on newer gateways);
    - a JIT session with no ``end_date`` whose access ended (review REVOKED, or APPROVED past its
      ``revoke_at``): final once the longest possible access has passed since ``revoke_at``,
      because revocation sets ``status = done`` without closing the connection
      (hoop: gateway/transport/plugins/review/review.go).
    A session recorded through an inspection sidecar that the gateway reaped can take events again
    (``metadata.sidecar.reaped_at``): never final. A malformed time makes it not final (read again).
    """
    metadata = record.get("metadata")
    sidecar = metadata.get("sidecar") if isinstance(metadata, dict) else None
    if isinstance(sidecar, dict) and sidecar.get("reaped_at") not in (None, ""):
        return None
    review = record.get("review")
    review = review if isinstance(review, dict) else None
    end_date = record.get("end_date")
    if record.get("status") == "done" and end_date not in (None, ""):
        return EPOCH
    if review is None:
        return None
    status = review.get("status")
    if status in NEVER_RUN_REVIEW_STATUSES:
        return EPOCH
    if (
        review.get("type") == "jit"
        and end_date in (None, "")
        and (status in ENDED_JIT_STATUSES or status == "APPROVED")
    ):
        try:
            revoke_at = parse_time(review.get("revoke_at"), "review.revoke_at")
        except RecordRejected:
            return None
        return revoke_at + MAX_ACCESS
    return None


def is_final(record: dict[str, Any], now: datetime) -> bool:
    """True when the record will not change any more as seen at ``now`` (see ``final_from``)."""
    since = final_from(record)
    return since is not None and since <= now
