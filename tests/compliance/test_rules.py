"""Each compliance rule, run on hoop records loaded through the real flatten and load path.

Every test loads sessions that must be flagged next to look-alikes that must not be, and asserts the
exact set of flagged sessions.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from hoop_sessions.compliance.rules import get_rule, load_rules, run_rule

from .conftest import Flagged, Load
from .hoop_records import DAY, DEFAULT_EVENTS, Record, at, events, group, review, session

EVIDENCE_PREFIX = (
    "session_id",
    "start_day",
    "start_date",
    "user_email",
    "connection",
    "environment",
    "review_id",
    "review_status",
)


def test_every_finding_rule_leads_with_the_same_evidence_columns(load: Load) -> None:
    warehouse = load([session("any")])
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for rule in load_rules().values():
            if rule.kind == "finding":
                columns = run_rule(con, rule).columns
                assert columns[: len(EVIDENCE_PREFIX)] == EVIDENCE_PREFIX, rule.id


def test_prod_access_without_approval_flags_unreviewed_prod_sessions_and_ones_that_ran_unapproved(
    load: Load, flagged: Flagged
) -> None:
    warehouse = load(
        [
            session("prod-no-review"),
            session(
                "prod-rejected-but-ran",
                review_=review(status="REJECTED", groups=[group("sre", status="REJECTED")]),
            ),
            session("prod-approved", review_=review(status="APPROVED")),
            session("prod-executed", review_=review(status="EXECUTED")),
            session(
                # Another user: a JIT grant of alice's on pg-prod would let prod-no-review in.
                "prod-revoked-jit",
                user="carol@example.com",
                review_=review(status="REVOKED", type_="jit", revoke_at=at("10:30")),
            ),
            session(
                "prod-pending-idle",
                status="open",
                minutes=None,
                exit_code=None,
                stream=None,
                review_=review(status="PENDING", groups=[group("sre", status="PENDING")]),
            ),
            session("dev-no-review", connection="pg-dev", environment="dev"),
            session("untagged-no-review", environment=None, tags={"env": "prod"}),
        ]
    )
    assert flagged(warehouse, "prod_access_without_approval") == {
        "prod-no-review",
        "prod-rejected-but-ran",
    }


def test_prod_access_without_approval_reads_production_from_the_configured_tag(
    load: Load, flagged: Flagged
) -> None:
    warehouse = load(
        [
            session("tagged-env-production", environment=None, tags={"env": "production"}),
            session("tagged-environment-prod"),
        ]
    )
    found = flagged(warehouse, "prod_access_without_approval", env_tag="env", prod_env="production")
    assert found == {"tagged-env-production"}


def test_self_approval_flags_sessions_approved_by_their_own_user_whatever_the_email_case(
    load: Load, flagged: Flagged
) -> None:
    warehouse = load(
        [
            session("self-approved", review_=review(groups=[group("sre", by="Alice@Example.com")])),
            session(
                "self-among-two",
                review_=review(
                    groups=[
                        group("sre", by="bob@example.com"),
                        group("dba", by="alice@example.com"),
                    ]
                ),
            ),
            session("approved-by-bob", review_=review(groups=[group("sre", by="bob@example.com")])),
            session(
                "self-rejected",
                review_=review(
                    status="REJECTED",
                    groups=[group("sre", status="REJECTED", by="alice@example.com")],
                ),
            ),
        ]
    )
    assert flagged(warehouse, "self_approval") == {"self-approved", "self-among-two"}


def test_outside_time_window_flags_starts_and_events_outside_the_window_also_across_midnight(
    load: Load, flagged: Flagged
) -> None:
    office = ("09:00", "18:00")
    night = ("22:00", "06:00")

    def windowed(
        name: str,
        clock: str,
        window: tuple[str, str],
        status: str = "APPROVED",
        stream: object = DEFAULT_EVENTS,
    ):
        return session(
            name,
            start=at(clock),
            minutes=90,
            stream=stream,
            review_=review(
                status=status,
                window=window,
                created=at(clock),
                groups=[group("sre", status="REJECTED" if status == "REJECTED" else "APPROVED")],
            ),
        )

    warehouse = load(
        [
            windowed("office-inside", "10:00", office),
            windowed("office-at-start", "09:00", office),
            windowed("office-before", "08:59:59", office),
            windowed("office-at-end", "18:00", office),
            windowed("night-late-inside", "23:30", night),
            windowed("night-early-inside", "05:59", night),
            windowed("night-noon-outside", "12:00", night),
            windowed("whole-day-window", "03:00", ("00:00", "00:00")),
            windowed("rejected-outside", "20:00", office, status="REJECTED"),
            windowed(
                "office-used-after-close",
                "17:30",
                office,
                stream=events((5.0, "i", b"ls\n"), (3600.0, "i", b"rm -rf /tmp/x\n")),
            ),
            windowed(
                "night-used-after-midnight",
                "23:50",
                night,
                stream=events((5.0, "i", b"ls\n"), (1200.0, "i", b"uptime\n")),
            ),
            session("no-window", start=at("03:00"), review_=review(created=at("03:00"))),
        ]
    )
    assert flagged(warehouse, "outside_time_window") == {
        "office-before",
        "office-at-end",
        "night-noon-outside",
        "office-used-after-close",
    }


def test_activity_after_revoke_flags_events_recorded_after_jit_access_ended(
    load: Load, flagged: Flagged
) -> None:
    jit = dict(type_="jit", status="REVOKED", revoke_at=at("10:30"))
    warehouse = load(
        [
            session(
                "typed-after-revoke",
                minutes=60,
                review_=review(**jit),
                stream=events((100.0, "i", b"ls\n"), (2400.0, "i", b"cat secrets\n")),
            ),
            session(
                "half-minute-late",
                minutes=60,
                review_=review(**jit),
                stream=events((1830.0, "o", b"late output\n")),
            ),
            session(
                "done-in-time",
                minutes=60,
                review_=review(**jit),
                stream=events((100.0, "i", b"ls\n"), (1799.0, "o", b"ok\n")),
            ),
            session(
                "onetime-without-revoke",
                minutes=60,
                review_=review(),
                stream=events((2400.0, "i", b"ls\n")),
            ),
        ]
    )
    assert flagged(warehouse, "activity_after_revoke") == {"typed-after-revoke", "half-minute-late"}
    assert flagged(warehouse, "activity_after_revoke", grace_seconds=60) == {"typed-after-revoke"}


def test_activity_without_approval_flags_pending_or_rejected_reviews_with_events_or_exit_code(
    load: Load, flagged: Flagged
) -> None:
    pending = dict(status="PENDING", groups=[group("sre", status="PENDING", by=None)])
    rejected = dict(
        status="REJECTED",
        groups=[group("sre", status="REJECTED")],
        rejection_reason="not in a change window",
    )
    warehouse = load(
        [
            session("pending-with-events", review_=review(**pending)),
            session(
                "rejected-with-exit-code", stream=None, exit_code=1, review_=review(**rejected)
            ),
            session(
                "rejected-on-dev-with-events",
                connection="pg-dev",
                environment="dev",
                review_=review(**rejected),
            ),
            session(
                "pending-idle",
                status="open",
                minutes=None,
                exit_code=None,
                stream=None,
                review_=review(**pending),
            ),
            session(
                "rejected-idle",
                minutes=None,
                exit_code=None,
                stream=None,
                review_=review(**rejected),
            ),
            session("approved-with-events", review_=review()),
        ]
    )
    assert flagged(warehouse, "activity_without_approval") == {
        "pending-with-events",
        "rejected-with-exit-code",
        "rejected-on-dev-with-events",
    }


def test_break_glass_approval_flags_every_forced_approval(load: Load, flagged: Flagged) -> None:
    warehouse = load(
        [
            session(
                "forced",
                jira_issue_key="OPS-1",
                review_=review(
                    min_approvals=2,
                    force_approval_groups=["sre-oncall"],
                    groups=[
                        group("sre-oncall", forced=True),
                        group("dba", status="PENDING", by=None),
                    ],
                ),
            ),
            session("normal", review_=review(groups=[group("sre")])),
            session(
                "forced-flag-still-pending",
                review_=review(
                    status="PENDING",
                    groups=[group("sre-oncall", status="PENDING", by=None, forced=True)],
                ),
            ),
        ]
    )
    assert flagged(warehouse, "break_glass_approval") == {"forced"}


def test_insufficient_approvals_flags_approved_reviews_short_of_their_quorum_or_with_a_refusal(
    load: Load, flagged: Flagged
) -> None:
    approved, pending, rejected = (
        group("sre"),
        group("dba", status="PENDING", by=None),
        group("dba", status="REJECTED", by="carol@example.com"),
    )
    warehouse = load(
        [
            session("two-of-two", review_=review(min_approvals=2, groups=[approved, group("dba")])),
            session(
                "one-of-two-required", review_=review(min_approvals=2, groups=[approved, pending])
            ),
            session(
                "one-required-one-given",
                review_=review(min_approvals=1, groups=[approved, pending]),
            ),
            session("every-group-required-one-missing", review_=review(groups=[approved, pending])),
            session("every-group-approved", review_=review(groups=[approved, group("dba")])),
            session(
                "approved-despite-rejection",
                review_=review(min_approvals=1, groups=[approved, rejected]),
            ),
            session("approved-without-groups", review_=review(groups=[])),
            session(
                "break-glass-short",
                review_=review(min_approvals=2, groups=[group("sre-oncall", forced=True), pending]),
            ),
            session(
                "still-pending-short",
                review_=review(status="PENDING", min_approvals=2, groups=[approved, pending]),
            ),
        ]
    )
    assert flagged(warehouse, "insufficient_approvals") == {
        "one-of-two-required",
        "every-group-required-one-missing",
        "approved-despite-rejection",
        "approved-without-groups",
    }


def test_long_session_flags_finished_sessions_over_the_threshold(
    load: Load, flagged: Flagged
) -> None:
    warehouse = load(
        [
            session("nine-hours", start=at("00:10"), minutes=9 * 60),
            session("two-hours", minutes=120),
            session("still-running", status="open", minutes=None, exit_code=None),
        ]
    )
    assert flagged(warehouse, "long_session") == {"nine-hours"}
    assert flagged(warehouse, "long_session", max_hours=1.5) == {"nine-hours", "two-hours"}


def test_failed_prod_session_flags_non_zero_exit_codes_on_production_only(
    load: Load, flagged: Flagged
) -> None:
    warehouse = load(
        [
            session("prod-exit-1", exit_code=1),
            session("prod-gateway-error", exit_code=254),
            session("prod-exit-0", exit_code=0),
            session("prod-never-ran", exit_code=None, stream=None, minutes=None, status="open"),
            session("dev-exit-1", connection="pg-dev", environment="dev", exit_code=1),
        ]
    )
    assert flagged(warehouse, "failed_prod_session") == {"prod-exit-1", "prod-gateway-error"}


def test_not_final_after_days_flags_sessions_that_stayed_open_longer_than_allowed(
    load: Load, flagged: Flagged
) -> None:
    long_ago = DAY - dt.timedelta(days=10)
    idle = dict(minutes=None, exit_code=None, stream=None, status="open")
    warehouse = load(
        [
            session("open-for-ten-days", start=at("10:00", long_ago), **idle),
            session(
                "pending-for-ten-days",
                start=at("10:00", long_ago),
                **idle,
                review_=review(
                    status="PENDING",
                    created=at("10:00", long_ago),
                    groups=[group("sre", status="PENDING", by=None)],
                ),
            ),
            session("done-ten-days-ago", start=at("10:00", long_ago)),
            session("open-since-today", **idle),
        ]
    )
    assert flagged(warehouse, "not_final_after_days") == {
        "open-for-ten-days",
        "pending-for-ten-days",
    }
    assert flagged(warehouse, "not_final_after_days", max_days=30) == set()


def test_masking_or_recording_gap_flags_masking_errors_truncation_and_undecodable_streams(
    load: Load, flagged: Flagged
) -> None:
    warehouse = load(
        [
            session(
                "masking-error",
                metrics={
                    "data_masking": {
                        "total_redact_count": 3,
                        "err_count": 1,
                        "info_types": ["EMAIL_ADDRESS"],
                    }
                },
            ),
            session("truncated", metrics={"truncated": True}),
            session(
                "undecodable",
                stream=["An internal error occurred: unable to decode the event stream: bad chunk"],
            ),
            session(
                "masked-cleanly",
                metrics={
                    "data_masking": {
                        "total_redact_count": 5,
                        "err_count": 0,
                        "info_types": ["PHONE_NUMBER"],
                    },
                    "truncated": False,
                },
            ),
            session("no-stream-yet", stream=None),
        ]
    )
    assert flagged(warehouse, "masking_or_recording_gap") == {
        "masking-error",
        "truncated",
        "undecodable",
    }


def test_machine_identity_on_prod_flags_machines_on_production_only(
    load: Load, flagged: Flagged
) -> None:
    warehouse = load(
        [
            session(
                "bot-on-prod",
                identity_type="machine",
                user="bot@example.com",
                machine_identity_id="mi-1",
            ),
            session(
                "bot-on-dev",
                identity_type="machine",
                user="bot@example.com",
                machine_identity_id="mi-1",
                connection="pg-dev",
                environment="dev",
            ),
            session("person-on-prod"),
        ]
    )
    assert flagged(warehouse, "machine_identity_on_prod") == {"bot-on-prod"}


def test_guardrail_match_flags_non_empty_guardrail_lists_only(load: Load, flagged: Flagged) -> None:
    match = {
        "rule_name": "deny-drop",
        "direction": "input",
        "matched_words": ["drop"],
        "rule": {"type": "deny_words_list", "words": ["drop"]},
    }
    warehouse = load(
        [
            session("matched", guardrails_info=[match]),
            session("empty-list", guardrails_info=[]),
            session("no-guardrails", guardrails_info=None),
        ]
    )
    assert flagged(warehouse, "guardrail_match") == {"matched"}


def test_ai_high_risk_flags_sessions_the_analysis_rated_at_the_requested_level(
    load: Load, flagged: Flagged
) -> None:
    def rated(level: str, action: str) -> Record:
        return {"risk_level": level, "title": "t", "explanation": "e", "action": action}

    warehouse = load(
        [
            session("high-blocked", ai_analysis=rated("high", "block_execution")),
            session("high-allowed", ai_analysis=rated("High", "allow_execution")),
            session("medium", ai_analysis=rated("medium", "allow_execution")),
            session("not-analysed", ai_analysis=None),
        ]
    )
    assert flagged(warehouse, "ai_high_risk") == {"high-blocked", "high-allowed"}
    assert flagged(warehouse, "ai_high_risk", risk_level="medium") == {"medium"}


def test_start_and_end_limit_a_rule_to_the_sessions_started_on_those_utc_days(
    load: Load, flagged: Flagged
) -> None:
    next_day = DAY + dt.timedelta(days=1)
    warehouse = load(
        [
            session("first-day", start=at("23:59:59")),
            session("second-day", start=at("00:00", next_day)),
        ]
    )
    rule = "prod_access_without_approval"
    assert flagged(warehouse, rule) == {"first-day", "second-day"}
    assert flagged(warehouse, rule, start=next_day) == {"second-day"}
    assert flagged(warehouse, rule, end=DAY.isoformat()) == {"first-day"}
    assert flagged(warehouse, rule, start=DAY, end=DAY) == {"first-day"}


def test_access_summary_counts_sessions_per_user_connection_and_environment(load: Load) -> None:
    warehouse = load(
        [
            session("a1", minutes=30),
            session("a2", minutes=90, start=at("12:00"), exit_code=2),
            session("a-dev", connection="pg-dev", environment="dev"),
            session("b1", user="bob@example.com", review_=review()),
        ]
    )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        result = run_rule(con, get_rule("access_summary"))
    rows = {r[:3]: dict(zip(result.columns, r, strict=True)) for r in result.rows}
    assert set(rows) == {
        ("alice@example.com", "pg-prod", "prod"),
        ("alice@example.com", "pg-dev", "dev"),
        ("bob@example.com", "pg-prod", "prod"),
    }
    alice_prod = rows[("alice@example.com", "pg-prod", "prod")]
    assert (alice_prod["sessions"], alice_prod["failed_sessions"]) == (2, 1)
    assert alice_prod["total_hours"] == 2.0
    assert rows[("bob@example.com", "pg-prod", "prod")]["reviewed_sessions"] == 1


def test_reviewer_workload_reports_decisions_and_approval_latency_percentiles(load: Load) -> None:
    def approved_after(name: str, minutes: int, by: str) -> dict[str, object]:
        return session(
            name,
            review_=review(
                created=at("10:00"),
                groups=[group("sre", by=by, at_=at("10:00") + dt.timedelta(minutes=minutes))],
            ),
        )

    warehouse = load(
        [
            approved_after("e1", 1, "erin@example.com"),
            approved_after("e2", 3, "erin@example.com"),
            approved_after("e3", 11, "erin@example.com"),
            approved_after("f1", 30, "frank@example.com"),
            session(
                "rejected-by-frank",
                review_=review(
                    status="REJECTED",
                    groups=[
                        group("sre", status="REJECTED", by="frank@example.com", at_=at("12:00"))
                    ],
                ),
            ),
        ]
    )
    with duckdb.connect(str(warehouse), read_only=True) as con:
        result = run_rule(con, get_rule("reviewer_workload"))
    rows = {r[0]: dict(zip(result.columns, r, strict=True)) for r in result.rows}
    erin, frank = rows["erin@example.com"], rows["frank@example.com"]
    assert (erin["decisions"], erin["approved"], erin["rejected"]) == (3, 3, 0)
    assert (erin["approval_p50_minutes"], erin["approval_max_minutes"]) == (3.0, 11.0)
    assert erin["approval_p90_minutes"] == 9.4  # linear interpolation between 3 and 11
    assert (frank["decisions"], frank["approved"], frank["rejected"]) == (2, 1, 1)
    assert frank["approval_p50_minutes"] == 30.0  # rejections are not approval latency
