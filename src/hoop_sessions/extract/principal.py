"""Who the API token is, and whether hoop shows it every session (``GET /api/userinfo``)."""

from __future__ import annotations

from typing import TypedDict

ADMIN_GROUPS = frozenset({"admin", "auditor"})


class Principal(TypedDict, total=False):
    """Who the API token is: what ``sync.preflight`` keeps of ``GET /api/userinfo``.

    Every key is optional: preflight writes all of them, but the fixture principal has no
    ``org_id`` and a raw file read back may hold an older or damaged record.
    """

    id: str | None
    email: str | None
    groups: list[str]
    is_admin: bool
    org_id: str | None


def principal_sees_all(principal: Principal) -> bool:
    groups = principal.get("groups") or []
    return bool(principal.get("is_admin")) or any(g in ADMIN_GROUPS for g in groups)


def describe_principal(principal: Principal) -> str:
    who = principal.get("email") or principal.get("id") or "unknown"
    groups = ",".join(str(g) for g in principal.get("groups") or [])
    return f"{who} (groups: {groups})"
