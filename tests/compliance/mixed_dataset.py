"""A few days of varied hoop sessions for the command-line, findings and report tests.

Routine traffic comes from a seeded generator; on top of it, one hand-made session per finding
rule, so every rule has something to show. Some values carry HTML metacharacters, to prove that the
report escapes what it prints.
"""

from __future__ import annotations

import datetime as dt
import random

from .hoop_records import Record, at, events, group, review, session

DAYS = (dt.date(2025, 3, 1), dt.date(2025, 3, 2), dt.date(2025, 3, 3))
STALE_DAY = dt.date(2025, 2, 27)
PERIOD = (STALE_DAY, DAYS[-1])
USERS = ("alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com")
REVIEWERS = ("erin@example.com", "frank@example.com")
CONNECTIONS = (("pg-prod", "prod"), ("pg-staging", "staging"), ("ssh-dev", "dev"))
HOSTILE_TEXT = '<script>alert("x")</script> & co'


def _routine(rng: random.Random) -> list[Record]:
    records = []
    for day in DAYS:
        for n in range(10):
            connection, environment = rng.choice(CONNECTIONS)
            start = at(f"{rng.randint(9, 16):02d}:{rng.randint(0, 59):02d}", day)
            reviewed = environment == "prod"
            latency = dt.timedelta(minutes=rng.choice((1, 3, 8, 20, 45, 90, 300)))
            records.append(
                session(
                    f"routine-{day}-{n}",
                    start=start,
                    minutes=rng.randint(1, 90),
                    user=rng.choice(USERS),
                    connection=connection,
                    environment=environment,
                    review_=(
                        review(
                            created=start,
                            status="EXECUTED",
                            groups=[group("sre", by=rng.choice(REVIEWERS), at_=start + latency)],
                        )
                        if reviewed
                        else None
                    ),
                )
            )
    return records


def _one_finding_per_rule() -> list[Record]:
    day = DAYS[1]
    approved = dict(created=at("10:00", day))
    soon = at("10:07", day)
    return [
        session("no-review-on-prod", start=at("11:00", day), review_=None),
        session(
            "self-approved",
            start=at("10:00", day),
            review_=review(**approved, groups=[group("sre", by="alice@example.com", at_=soon)]),
        ),
        session(
            "outside-window",
            start=at("23:30", day),
            review_=review(
                created=at("23:30", day),
                window=("09:00", "18:00"),
                groups=[group("sre", by="erin@example.com", at_=at("23:40", day))],
            ),
        ),
        session(
            "late-after-revoke",
            start=at("12:00", day),
            minutes=60,
            stream=events((5.0, "i", b"\\dt\n"), (2400.0, "i", b"select * from cards;\n")),
            review_=review(
                type_="jit",
                created=at("12:00", day),
                revoke_at=at("12:30", day),
                status="REVOKED",
                groups=[group("sre", by="frank@example.com", at_=at("12:01", day))],
            ),
        ),
        session(
            "ran-while-pending",
            start=at("13:00", day),
            connection="pg-staging",
            environment="staging",
            review_=review(
                status="PENDING",
                created=at("13:00", day),
                groups=[group("sre", status="PENDING", by=None)],
            ),
        ),
        session(
            "break-glass",
            start=at("14:00", day),
            jira_issue_key="OPS-42",
            review_=review(
                **approved,
                min_approvals=2,
                force_approval_groups=["sre-oncall"],
                groups=[
                    group("sre-oncall", by="frank@example.com", forced=True, at_=at("14:01", day)),
                    group("dba", status="PENDING", by=None),
                ],
            ),
        ),
        session(
            "short-of-quorum",
            start=at("15:00", day),
            review_=review(
                **approved,
                min_approvals=2,
                groups=[
                    group("sre", by="erin@example.com", at_=soon),
                    group("dba", status="PENDING", by=None),
                ],
            ),
        ),
        session(
            "ten-hour-session",
            start=at("00:30", day),
            minutes=600,
            connection="ssh-dev",
            environment="dev",
        ),
        session(
            "failed-on-prod",
            start=at("16:00", day),
            exit_code=1,
            review_=review(**approved, groups=[group("sre", by="erin@example.com", at_=soon)]),
        ),
        session(
            "stale-open",
            start=at("09:00", STALE_DAY),
            minutes=None,
            status="open",
            exit_code=None,
            stream=None,
            connection="pg-staging",
            environment="staging",
        ),
        session(
            "masking-error",
            start=at("17:00", day),
            connection="pg-staging",
            environment="staging",
            metrics={
                "data_masking": {
                    "total_redact_count": 4,
                    "err_count": 2,
                    "info_types": ["EMAIL_ADDRESS"],
                }
            },
        ),
        session(
            "bot-on-prod",
            start=at("03:00", day),
            identity_type="machine",
            user="deploy-bot@example.com",
            machine_identity_id="mi-deploy",
            review_=review(
                created=at("03:00", day),
                groups=[group("sre", by="erin@example.com", at_=at("03:02", day))],
            ),
        ),
        session(
            "guardrail-hit",
            start=at("18:00", day),
            connection="pg-staging",
            environment="staging",
            guardrails_info=[
                {
                    "rule_name": HOSTILE_TEXT,
                    "direction": "input",
                    "matched_words": ["password"],
                    "rule": {"type": "deny_words_list", "words": ["password"]},
                }
            ],
        ),
        session(
            "ai-high-risk",
            start=at("19:00", day),
            exit_code=None,
            ai_analysis={
                "risk_level": "high",
                "title": "Potential data exfiltration",
                "explanation": "The script selects personal data in bulk.",
                "action": "block_execution",
            },
        ),
    ]


def mixed_records() -> list[Record]:
    return _routine(random.Random(7)) + _one_finding_per_rule()
