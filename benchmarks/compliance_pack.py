"""The compliance pack on a large generated warehouse: time every rule, and the findings refresh.

The warehouse is generated in DuckDB itself with ``range()`` into the contract tables made by
``hoop_sessions.warehouse.load.ensure_schema``, so a million sessions take seconds, not a sync; then the
summary each session row carries of its other rows is filled by the statement the load runs for a
day (``hoop_sessions.warehouse.load.fill_session_summary``), over every day at once. The
shape follows the simulator's: a dozen connections (production ones ask for a review), humans and
machine identities, JIT and one-time reviews with one or two groups, a few break-glass approvals,
self-approvals, long sessions, guardrail matches, masking errors, open sessions; every session has
``events / sessions`` events.

Run as ``python -m benchmarks.compliance_pack --sessions N --events M [--db PATH]``; it prints one
JSON line: generation time, then each rule's time and row count, and the refresh's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson

from hoop_sessions.build import schema
from hoop_sessions.compliance.rules import load_rules, refresh_findings, run_rule
from hoop_sessions.warehouse import load as warehouse

# A year of sessions ending on this day (any fixed day: the rules compare times with each other).
EPOCH_START = 1_735_689_600  # 2025-01-01T00:00:00Z
YEAR_S = 365 * 86_400

# Connections: name, type, subtype, environment, reviewed share (per mille), review type.
CONNECTIONS = [
    ("pg-prod", "database", "postgres", "prod", 980, "jit"),
    ("mysql-prod", "database", "mysql", "prod", 980, "onetime"),
    ("k8s-prod", "custom", "kubernetes", "prod", 950, "jit"),
    ("ssh-bastion-prod", "custom", "ssh", "prod", 950, "jit"),
    ("billing-api-prod", "application", "http", "prod", 900, "onetime"),
    ("pg-staging", "database", "postgres", "staging", 50, "jit"),
    ("mysql-staging", "database", "mysql", "staging", 20, "onetime"),
    ("k8s-staging", "custom", "kubernetes", "staging", 0, "jit"),
    ("pg-dev", "database", "postgres", "dev", 0, "jit"),
    ("redis-dev", "database", "redis", "dev", 0, "jit"),
    ("ssh-dev", "custom", "ssh", "dev", 0, "jit"),
    ("rdp-jumphost", "custom", "rdp", "staging", 0, "jit"),
]


def _connections_sql() -> str:
    rows = ", ".join(
        f"({i}, '{n}', '{t}', '{s}', '{e}', {r}, '{rt}')"
        for i, (n, t, s, e, r, rt) in enumerate(CONNECTIONS)
    )
    return f"SELECT * FROM (VALUES {rows}) AS c(ci, name, type, subtype, env, reviewed_pm, review_type)"


def generate(con: duckdb.DuckDBPyConnection, *, sessions: int, events: int) -> None:
    """Fill the contract tables with ``sessions`` sessions and ``events`` events."""
    warehouse.ensure_schema(con)
    per = max(events // max(sessions, 1), 1)
    step = YEAR_S / max(sessions, 1)
    con.execute("SET TimeZone = 'UTC'")
    # One row per session with its random draws (hash of the row number: reproducible).
    con.execute(
        f"""
        CREATE TEMP TABLE gen AS
        SELECT i,
               printf('%08x-%04x-4%03x-8%03x-%012x', i, i % 65536, i % 4096, (i // 7) % 4096, i) AS sid,
               to_timestamp({EPOCH_START} + i * {step}) AS start_date,
               hash(i, 1) % {len(CONNECTIONS)} AS ci,
               hash(i, 2) % 1000 AS r_review,
               hash(i, 3) % 1000 AS r_status,
               hash(i, 4) % 1000 AS r_user,
               hash(i, 5) % 1000 AS r_duration,
               hash(i, 6) % 1000 AS r_misc,
               hash(i, 7) % 1000 AS r_review_status
        FROM range({sessions}) AS t(i)
        """
    )
    con.execute(f"CREATE TEMP TABLE conn AS {_connections_sql()}")
    con.execute(
        """
        CREATE TEMP TABLE s0 AS
        SELECT g.*, c.name AS connection, c.type, c.subtype, c.env, c.review_type,
               g.r_review < c.reviewed_pm AS reviewed,
               g.r_user < 100 AS machine,
               CASE WHEN g.r_user < 100 THEN 'bot-' || (g.r_user % 5) || '@acme.example'
                    ELSE 'user' || (g.r_user % 60) || '@acme.example' END AS user_email,
               CASE WHEN g.r_duration < 40 THEN 18000 + (g.r_duration * 997) % 32400
                    WHEN g.r_duration < 600 THEN 1 + (g.r_duration * 31) % 120
                    ELSE 60 + (g.r_duration * 7919) % 3600 END AS duration_s,
               g.r_status < 15 AS still_open
        FROM gen AS g JOIN conn AS c USING (ci)
        """
    )
    con.execute(
        f"""
        INSERT INTO sessions ({", ".join(schema.SESSIONS.columns)})
        SELECT sid, 'org-acme', start_date,
               CASE WHEN still_open THEN NULL ELSE start_date + to_seconds(duration_s) END,
               CAST(start_date AS DATE),
               CASE WHEN still_open THEN NULL ELSE duration_s END,
               CASE WHEN still_open THEN 'open' ELSE 'done' END,
               CASE WHEN r_misc < 600 THEN 'exec' ELSE 'connect' END,
               type, subtype, NULL, connection, connection, connection,
               user_email, CASE WHEN machine THEN 'hpk_' || (r_user % 5) ELSE 'sub|' || (r_user % 60) END,
               split_part(user_email, '@', 1),
               CASE WHEN machine THEN 'machine' ELSE 'user' END,
               CASE WHEN machine THEN 'mi-' || (r_user % 5) ELSE NULL END,
               CASE WHEN still_open THEN NULL WHEN r_misc < 30 THEN 1 WHEN r_misc < 33 THEN 254 ELSE 0 END,
               {per} * 180, 40,
               CASE WHEN r_misc < 600 THEN 'SELECT * FROM accounts WHERE id = ' || (i % 1000) ELSE '' END,
               CASE WHEN r_misc % 50 = 0 THEN 'batch-' || (i // 100) ELSE NULL END,
               CASE WHEN r_misc % 40 = 1 THEN 'task-' || (i % 40) ELSE NULL END,
               CASE WHEN r_misc % 9 = 0 THEN 'OPS-' || (i % 5000) ELSE NULL END,
               '{{"team":"platform"}}', NULL,
               '{{"data_masking":{{"total_redact_count":0,"err_count":0}}}}', NULL, NULL,
               CASE WHEN r_misc % 100 = 7
                    THEN '[{{"rule_name":"deny-drop","direction":"input","matched_words":["drop"]}}]'
                    ELSE NULL END,
               CASE WHEN r_misc % 20 = 3 THEN 2 ELSE 0 END,
               CASE WHEN r_misc % 500 = 11 THEN 1 ELSE 0 END,
               r_misc % 800 = 5,
               CASE WHEN reviewed THEN 'r' || sid ELSE NULL END,
               CASE WHEN NOT reviewed THEN NULL
                    WHEN r_review_status < 820 THEN CASE review_type WHEN 'jit' THEN 'REVOKED' ELSE 'EXECUTED' END
                    WHEN r_review_status < 900 THEN 'APPROVED'
                    WHEN r_review_status < 960 THEN 'REJECTED'
                    ELSE 'PENDING' END,
               {per}, 'ok',
               NOT still_open AND (NOT reviewed OR r_review_status < 960),
               start_date + INTERVAL 2 DAY
        FROM s0
        """
    )
    con.execute(
        """
        INSERT INTO reviews
        SELECT s.review_id, s.session_id, s.start_day, g.review_type, s.review_status,
               3600.0, s.start_date - INTERVAL 5 MINUTE,
               CASE WHEN g.review_type = 'jit' AND s.review_status IN ('APPROVED', 'REVOKED')
                    THEN s.start_date + INTERVAL 55 MINUTE END,
               CASE WHEN g.r_misc % 10 = 0 THEN TIME '08:00' END,
               CASE WHEN g.r_misc % 10 = 0 THEN TIME '18:00' END,
               'prod-access', CASE WHEN g.r_misc % 4 = 0 THEN 2 ELSE 1 END,
               CASE WHEN g.r_misc % 4 = 0 THEN ['sre'] ELSE NULL END,
               CASE WHEN s.review_status = 'REJECTED' THEN 'not during the freeze' END
        FROM sessions AS s JOIN s0 AS g ON g.sid = s.session_id
        WHERE s.review_id IS NOT NULL
        """
    )
    # One group per review, two when two approvals are required; a few self- and forced approvals.
    con.execute(
        """
        INSERT INTO review_groups
        SELECT r.review_id || '-' || k, r.review_id, r.session_id, r.start_day,
               CASE k WHEN 1 THEN 'dba' ELSE 'sre' END,
               CASE WHEN r.status IN ('PENDING') THEN 'PENDING'
                    WHEN r.status = 'REJECTED' THEN 'REJECTED' ELSE 'APPROVED' END,
               g.r_user % 97 = 0,
               CASE WHEN r.status = 'PENDING' THEN NULL ELSE 'rev-' || (g.r_user % 7) END,
               CASE WHEN r.status = 'PENDING' THEN NULL
                    WHEN g.r_user % 33 = 0 THEN s.user_email
                    ELSE 'reviewer' || ((g.r_user + k) % 7) || '@acme.example' END,
               CASE WHEN r.status = 'PENDING' THEN NULL ELSE 'Reviewer ' || (g.r_user % 7) END,
               NULL,
               CASE WHEN r.status = 'PENDING' THEN NULL ELSE r.created_at + INTERVAL 2 MINUTE END
        FROM reviews AS r
        JOIN sessions AS s ON s.session_id = r.session_id
        JOIN s0 AS g ON g.sid = r.session_id,
        range(1, 3) AS t(k)
        WHERE k = 1 OR (r.min_approvals = 2 AND g.r_user % 10 <> 0)
        """
    )
    con.execute(
        """
        INSERT INTO connection_tags
        SELECT sid, CAST(start_date AS DATE), 'environment', env FROM s0
        UNION ALL
        SELECT sid, CAST(start_date AS DATE), 'team', 'platform' FROM s0
        """
    )
    # Events: `per` per session, payloads of a few dozen bytes; the session's start is recomputed
    # from its number so no join is needed over millions of rows.
    con.execute(
        f"""
        INSERT INTO session_events
        SELECT printf('%08x-%04x-4%03x-8%03x-%012x', s, s % 65536, s % 4096, (s // 7) % 4096, s),
               k,
               CAST(to_timestamp({EPOCH_START} + s * {step}) AS DATE),
               k * gap,
               to_timestamp({EPOCH_START} + s * {step} + k * gap),
               CASE WHEN k % 3 = 0 THEN 'i' ELSE 'o' END,
               encode('SELECT id, email FROM accounts WHERE id = ' || (e % 100000)),
               'SELECT id, email FROM accounts WHERE id = ' || (e % 100000),
               length('SELECT id, email FROM accounts WHERE id = ' || (e % 100000)),
               NULL
        FROM (SELECT e, e // {per} AS s, e % {per} AS k,
                     -- one session in 200 keeps going for hours (some past a JIT revoke_at)
                     CASE WHEN (e // {per}) % 200 = 0 THEN 400.0 ELSE 1.5 END AS gap
              FROM range({sessions * per}) AS t(e))
        """
    )
    con.execute(
        """
        INSERT INTO sync_windows
        SELECT start_day, CAST(start_day AS TIMESTAMPTZ), CAST(start_day + 1 AS TIMESTAMPTZ),
               count(*), count(*), 0, count(*) // 100 + 1, count(*) + count(*) // 100 + 1, 0,
               max(synced_at), max(synced_at), 'http://127.0.0.1', 'bench (groups: admin)'
        FROM sessions GROUP BY start_day
        """
    )
    for temp in ("gen", "s0", "conn"):
        con.execute(f"DROP TABLE {temp}")
    warehouse.fill_session_summary(con)
    con.execute("CHECKPOINT")


def measure(db: Path, *, sessions: int, events: int, reuse: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"sessions": sessions, "events": events}
    if not (reuse and db.exists()):
        db.unlink(missing_ok=True)
        started = time.perf_counter()
        with duckdb.connect(str(db)) as con:
            generate(con, sessions=sessions, events=events)
        out["generate_s"] = time.perf_counter() - started
    with duckdb.connect(str(db)) as con:
        warehouse.ensure_schema(con)  # a reused warehouse made by an earlier version catches up
        counts = warehouse.table_counts(con)
        out["rows"] = counts
        rules = load_rules()
        timings = []
        for rule in rules.values():
            started = time.perf_counter()
            result = run_rule(con, rule)
            timings.append(
                {
                    "rule": rule.id,
                    "kind": rule.kind,
                    "seconds": time.perf_counter() - started,
                    "rows": len(result.rows),
                }
            )
        out["rules"] = timings
        out["rules_total_s"] = sum(t["seconds"] for t in timings)
        started = time.perf_counter()
        refreshed = refresh_findings(con)
        out["refresh_findings_s"] = time.perf_counter() - started
        out["findings"] = refreshed.total
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="time the compliance pack on a generated warehouse"
    )
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument(
        "--db", type=Path, help="warehouse file to generate into (default: a temp file)"
    )
    parser.add_argument("--reuse", action="store_true", help="reuse --db if it exists")
    args = parser.parse_args(argv)
    if args.db:
        doc = measure(args.db, sessions=args.sessions, events=args.events, reuse=args.reuse)
    else:
        with tempfile.TemporaryDirectory(prefix="hoop-bench-compliance-") as tmp:
            doc = measure(
                Path(tmp) / "warehouse.duckdb",
                sessions=args.sessions,
                events=args.events,
                reuse=False,
            )
    sys.stdout.write(orjson.dumps(doc).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
