"""hoop API records for tests, shaped as GET /api/sessions/{id}?expand=event_stream,session_input."""

from __future__ import annotations

import base64
import copy
from typing import Any

SID = "0b9f6a3c-1111-4222-8333-444455556666"
RID = "aa9f6a3c-1111-4222-8333-444455556666"
GID = "bb9f6a3c-1111-4222-8333-444455556666"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def session_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": SID,
        "org_id": "0cd7f941-2bb8-4f9f-93b0-11620d4652ab",
        "start_date": "2026-11-01T10:00:00.3176Z",
        "end_date": "2026-11-01T10:05:00.000001Z",
        "status": "done",
        "verb": "exec",
        "type": "database",
        "connection_subtype": "postgres",
        "connection": "pg-prod",
        "role_name": "pg-prod",
        "resource_name": "pg-main",
        "connection_tags": {"environment": "prod", "team": "payments"},
        "user": "alice@example.com",
        "user_id": "nJ1xV3ASWGTi7L8Y6zvnKqxNlnZM2TxV1bRdc0706vZ",
        "user_name": "Alice",
        "identity_type": "user",
        "exit_code": 0,
        "event_size": 120,
        "script_size": 10,
        "script": {"data": "SELECT 1;"},
        "labels": None,
        "metadata": {"ticket": "OPS-1", "nested": {"a": [1, 2]}},
        "integrations_metadata": {"jira_issue_key": "OPS-1"},
        "metrics": {
            "data_masking": {"total_redact_count": 4, "err_count": 1, "info_types": {"EMAIL": 4}},
            "truncated": False,
        },
        "ai_analysis": {"risk_level": "low", "title": "ok"},
        "guardrails_info": [{"rule_name": "deny", "direction": "input", "matched_words": ["drop"]}],
        "session_batch_id": "batch-1",
        "correlation_id": "task-9",
        "review": {
            "id": RID,
            "type": "jit",
            "access_duration": 1_800_000_000_000,
            "status": "APPROVED",
            "revoke_at": "2026-11-01T10:30:00.5Z",
            "created_at": "2026-11-01T09:59:00.12Z",
            "time_window": {
                "type": "time_range",
                "configuration": {"start_time": "09:00", "end_time": "18:00"},
            },
            "access_request_rule_name": "prod-rule",
            "min_approvals": 1,
            "force_approval_groups": ["sre"],
            "review_groups_data": [
                {
                    "id": GID,
                    "group": "sre",
                    "status": "APPROVED",
                    "reviewed_by": {
                        "id": "u-2",
                        "name": "Bob",
                        "email": "bob@example.com",
                        "slack_id": "U1",
                    },
                    "review_date": "2026-11-01T10:00:00.2Z",
                    "forced_review": False,
                }
            ],
        },
        "event_stream": [
            [0.5, "i", b64(b"SELECT 1;\n")],
            [0.75, "o", b64(b"\x1b[1m1\x1b[0m\xff")],
            [1.25, "e", b64(b"")],
        ],
    }
    for key, value in overrides.items():
        if value is DROP:
            record.pop(key, None)
        else:
            record[key] = value
    return copy.deepcopy(record)


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()
