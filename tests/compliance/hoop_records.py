"""Builders of hoop session records, shaped like ``GET /api/sessions/{id}?expand=event_stream,
session_input`` responses (see HOOP_API.md), so that tests exercise the real flatten and load path.

Sessions are named in tests; ids are UUIDs derived from the names (hoop ids are lower-case UUIDs)
and ``name_of`` maps them back, so assertions read as names.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

DAY = dt.date(2025, 3, 3)
_NAMESPACE = uuid.UUID("6f1d3c52-0000-4000-8000-000000000000")
_NAMES: dict[str, str] = {}

Record = dict[str, Any]


def sid(name: str) -> str:
    """The session id of a named test session."""
    value = str(uuid.uuid5(_NAMESPACE, name))
    _NAMES[value] = name
    return value


def rid(name: str) -> str:
    """The review id of a named test session's own review (see ``session``)."""
    return str(uuid.uuid5(_NAMESPACE, name + "/review"))


def name_of(session_id: str) -> str:
    return _NAMES.get(session_id, session_id)


def at(clock: str, day: dt.date = DAY) -> dt.datetime:
    """A UTC instant on a test day, from ``HH:MM`` or ``HH:MM:SS``."""
    return dt.datetime.combine(day, dt.time.fromisoformat(clock), dt.UTC)


def hoop_time(value: dt.datetime | None, *, millis: bool = False) -> str | None:
    """hoop's RFC3339: ``Z``, fraction with trailing zeros trimmed (milliseconds for reviews)."""
    if value is None:
        return None
    value = value.astimezone(dt.UTC)
    fraction = f"{value.microsecond:06d}"[: 3 if millis else 6].rstrip("0")
    return value.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def group(
    name: str,
    *,
    status: str = "APPROVED",
    by: str | None = "bob@example.com",
    at_: dt.datetime | None = None,
    forced: bool = False,
) -> Record:
    """One entry of ``review.review_groups_data``; ``by=None`` means nobody decided yet."""
    decided = status != "PENDING" and by is not None
    return {
        "group": name,
        "status": status,
        "reviewed_by": (
            {
                "id": str(uuid.uuid5(_NAMESPACE, by)),
                "name": by.split("@")[0].title(),
                "email": by,
                "slack_id": "U0" + by.split("@")[0].upper(),
            }
            if decided
            else None
        ),
        "review_date": hoop_time(at_ or at("10:05"), millis=True) if decided else None,
        "forced_review": forced,
    }


def review(
    *,
    status: str = "APPROVED",
    type_: str = "onetime",
    created: dt.datetime | None = None,
    revoke_at: dt.datetime | None = None,
    window: tuple[str, str] | None = None,
    min_approvals: int | None = None,
    groups: list[Record] | None = None,
    force_approval_groups: list[str] | None = None,
    rejection_reason: str | None = None,
    access_minutes: int = 30,
) -> Record:
    """A ``review`` object without ids; ``session`` gives it ids derived from the session name."""
    body: Record = {
        "type": type_,
        "access_duration": access_minutes * 60 * 1_000_000_000 if type_ == "jit" else 0,
        "status": status,
        "revoke_at": hoop_time(revoke_at, millis=True),
        "created_at": hoop_time(created or at("10:00"), millis=True),
        "review_groups_data": groups if groups is not None else [group("sre")],
        "time_window": (
            {
                "type": "time_range",
                "configuration": {"start_time": window[0], "end_time": window[1]},
            }
            if window
            else None
        ),
        "access_request_rule_name": "default-access-request-rule",
        "min_approvals": min_approvals,
        "force_approval_groups": force_approval_groups,
    }
    if rejection_reason is not None:
        body["rejection_reason"] = rejection_reason
    return body


def jit_review(
    *,
    approved: dt.datetime,
    minutes: int = 30,
    status: str = "APPROVED",
    revoked: dt.datetime | None = None,
    created: dt.datetime | None = None,
) -> Record:
    """A JIT review as hoop shows it once approved: revoke_at = approval + access duration.

    ``revoked`` is a manual revoke: hoop sets the status REVOKED and keeps revoke_at, and the
    revoking group carries the revoke time (gateway/api/review/review.go).
    """
    groups = [group("sre", at_=approved)]
    if revoked is not None:
        status = "REVOKED"
        groups.append(group("sre-oncall", status="REVOKED", by="carol@example.com", at_=revoked))
    return review(
        type_="jit",
        status=status,
        created=created or approved - dt.timedelta(minutes=5),
        revoke_at=approved + dt.timedelta(minutes=minutes),
        access_minutes=minutes,
        groups=groups,
    )


def events(*items: tuple[float, str, bytes]) -> list[list[Any]]:
    """A raw event stream: ``[elapsed_seconds, "i"|"o"|"e", base64(bytes)]``."""
    return [[elapsed, kind, base64.b64encode(data).decode()] for elapsed, kind, data in items]


DEFAULT_EVENTS = events((0.25, "i", b"select 1;\n"), (0.5, "o", b"1\n"))


def session(
    name: str,
    *,
    start: dt.datetime | None = None,
    minutes: float | None = 5,
    status: str = "done",
    user: str = "alice@example.com",
    connection: str = "pg-prod",
    environment: str | None = "prod",
    tags: dict[str, str] | None = None,
    exit_code: int | None = 0,
    stream: Any = DEFAULT_EVENTS,
    review_: Record | None = None,
    identity_type: str = "user",
    machine_identity_id: str | None = None,
    metrics: Record | None = None,
    guardrails_info: Any = None,
    ai_analysis: Record | None = None,
    jira_issue_key: str | None = None,
    event_size: int | None = None,
    metadata: Record | None = None,
) -> Record:
    """A session record as hoop returns it; ``minutes=None`` leaves it without an end date.

    ``user_id`` is the part of ``user`` before the ``@``: two sessions of one email are one owner
    for hoop's JIT lookup. ``event_size`` defaults to 128 with a stream and 0 without.
    """
    start = start or at("10:00")
    end = start + dt.timedelta(minutes=minutes) if minutes is not None else None
    connection_tags = dict(tags or {})
    if environment is not None:
        connection_tags.setdefault("environment", environment)
    record: Record = {
        "id": sid(name),
        "org_id": "0b0a6b5e-7c43-4a57-9d1c-9b6f1a2d0c11",
        "start_date": hoop_time(start),
        "end_date": hoop_time(end),
        "status": status,
        "verb": "exec",
        "type": "database",
        "connection_subtype": "postgres",
        "connection": connection,
        "role_name": connection,
        "resource_name": connection,
        "connection_tags": connection_tags or None,
        "user": user,
        "user_id": user.split("@")[0] if identity_type == "user" else "svc-" + name,
        "user_name": user.split("@")[0].title(),
        "identity_type": identity_type,
        "exit_code": exit_code,
        "event_size": event_size if event_size is not None else (0 if stream is None else 128),
        "script_size": 10,
        "script": {"data": "select 1;"},
        "labels": None,
        "metadata": metadata,
        "integrations_metadata": {"jira_issue_key": jira_issue_key} if jira_issue_key else None,
        "metrics": metrics,
        "ai_analysis": ai_analysis,
        "guardrails_info": guardrails_info,
        "review": None,
    }
    if machine_identity_id is not None:
        record["machine_identity_id"] = machine_identity_id
    if stream is not None:
        record["event_stream"] = stream
    if review_ is not None:
        body = dict(review_)
        body["id"] = rid(name)
        body["review_groups_data"] = [
            {"id": str(uuid.uuid5(_NAMESPACE, f"{name}/group/{i}")), **g}
            for i, g in enumerate(body["review_groups_data"])
        ]
        # Key order as hoop sends it: id first.
        record["review"] = {"id": body.pop("id"), **body}
    return record
