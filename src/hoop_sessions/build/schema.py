"""The data contract in code: one Arrow schema per table.

Everything else derives from these definitions: the Parquet files are written with them, the DuckDB
DDL is generated from them (``ddl``), and the tests check the warehouse against them. A column whose
DuckDB type is not the plain translation of its Arrow type carries it in the field metadata
(``duckdb_type``): JSON documents travel as UTF-8 strings in Parquet and become ``JSON`` in DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")


def _json(name: str, doc: str) -> pa.Field:
    return pa.field(name, pa.string(), metadata={"duckdb_type": "JSON", "doc": doc})


def _f(name: str, type_: pa.DataType, doc: str, *, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"doc": doc})


@dataclass(frozen=True)
class Table:
    """A table of the data contract: its name, key columns and Arrow schema."""

    name: str
    key: tuple[str, ...]
    schema: pa.Schema
    description: str

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)


SESSIONS = Table(
    name="sessions",
    key=("session_id",),
    description="One row per session: who, which connection, when, outcome, review summary.",
    schema=pa.schema(
        [
            _f("session_id", pa.string(), "hoop session id (lower-case UUID)", nullable=False),
            _f("org_id", pa.string(), "organization id"),
            _f("start_date", UTC_TS, "when the session was requested (UTC)", nullable=False),
            _f("end_date", UTC_TS, "when it ended; null while running, rejected or revoked"),
            _f("start_day", pa.date32(), "UTC date of start_date; the partition", nullable=False),
            _f("duration_seconds", pa.float64(), "end_date - start_date in seconds"),
            _f("status", pa.string(), "open, ready or done, as hoop sent it"),
            _f("verb", pa.string(), "connect or exec"),
            _f("type", pa.string(), "main connection type (database, application, custom, ...)"),
            _f("connection_subtype", pa.string(), "postgres, mysql, ssh, ...; '' when unknown"),
            _f(
                "recording_format",
                pa.string(),
                "how the session was recorded: pty, exec, rdp, raw...; null when the gateway does "
                "not send it (older gateways)",
            ),
            _f("connection", pa.string(), "connection name at session time"),
            _f("role_name", pa.string(), "role name (same as connection name)"),
            _f("resource_name", pa.string(), "resource name, looked up live by hoop"),
            _f("user_email", pa.string(), "email of the user (hoop's `user`)"),
            _f("user_id", pa.string(), "login subject or API key id"),
            _f("user_name", pa.string(), "display name"),
            _f("identity_type", pa.string(), "user or machine (newer gateways: sidecar, ...)"),
            _f("machine_identity_id", pa.string(), "machine identity, when identity_type=machine"),
            _f(
                "exit_code", pa.int64(), "exit code; null while running or never run; 254 = gateway"
            ),
            _f("event_size", pa.int64(), "bytes of the stored encoded stream"),
            _f("script_size", pa.int64(), "bytes of the JSON-escaped input"),
            _f("script", pa.string(), "the input of the session (script.data)"),
            _f("session_batch_id", pa.string(), "batch id"),
            _f("correlation_id", pa.string(), "external workflow id"),
            _f("jira_issue_key", pa.string(), "integrations_metadata.jira_issue_key"),
            _json("labels", "labels map"),
            _json("metadata", "metadata map (owners can edit it)"),
            _json("metrics", "metrics map (data masking, truncation, ...)"),
            _json("integrations_metadata", "integrations metadata map"),
            _json("ai_analysis", "AI risk analysis"),
            _json("guardrails_info", "guardrail rules that matched"),
            _f("redacted_count", pa.int64(), "metrics.data_masking.total_redact_count"),
            _f("masking_error_count", pa.int64(), "metrics.data_masking.err_count"),
            _f("stream_truncated", pa.bool_(), "metrics.truncated: recording stopped at 110 MiB"),
            _f("review_id", pa.string(), "review id, when the session was reviewed"),
            _f("review_status", pa.string(), "review status at sync time"),
            _f("event_count", pa.int64(), "number of events in the stream (0 if none)"),
            _f("stream_status", pa.string(), "ok, absent, forbidden or unreadable"),
            _f("is_final", pa.bool_(), "true when the record will not change (see README)"),
            _f("synced_at", UTC_TS, "when this row was read from hoop", nullable=False),
        ]
    ),
)

REVIEWS = Table(
    name="reviews",
    key=("review_id",),
    description="One row per review (approval request) of a session.",
    schema=pa.schema(
        [
            _f("review_id", pa.string(), "review id", nullable=False),
            _f("session_id", pa.string(), "reviewed session", nullable=False),
            _f("start_day", pa.date32(), "partition: UTC date of the session", nullable=False),
            _f("type", pa.string(), "onetime or jit"),
            _f("status", pa.string(), "PENDING, APPROVED, REJECTED, REVOKED, PROCESSING, ..."),
            _f("access_duration_seconds", pa.float64(), "JIT access length (hoop sends ns)"),
            _f("created_at", UTC_TS, "when the review was requested"),
            _f("revoke_at", UTC_TS, "when JIT access ends; null until approved"),
            _f("time_window_start", pa.time64("us"), "allowed window start (UTC TIME)"),
            _f("time_window_end", pa.time64("us"), "allowed window end (UTC TIME)"),
            _f("access_request_rule_name", pa.string(), "access request rule that asked for it"),
            _f("min_approvals", pa.int64(), "approvals required"),
            _f("force_approval_groups", pa.list_(pa.string()), "groups that may force-approve"),
            _f("rejection_reason", pa.string(), "reason given on rejection"),
        ]
    ),
)

REVIEW_GROUPS = Table(
    name="review_groups",
    key=("review_group_id",),
    description="One row per group asked to approve a review, with who decided and when.",
    schema=pa.schema(
        [
            _f("review_group_id", pa.string(), "review group id", nullable=False),
            _f("review_id", pa.string(), "review", nullable=False),
            _f("session_id", pa.string(), "session", nullable=False),
            _f("start_day", pa.date32(), "partition", nullable=False),
            _f("group_name", pa.string(), "group asked to approve"),
            _f("status", pa.string(), "APPROVED, REJECTED, REVOKED or PENDING"),
            _f("forced_review", pa.bool_(), "break-glass approval"),
            _f("reviewer_id", pa.string(), "who decided: id"),
            _f("reviewer_email", pa.string(), "who decided: email"),
            _f("reviewer_name", pa.string(), "who decided: name"),
            _f("reviewer_slack_id", pa.string(), "who decided: Slack id"),
            _f("reviewed_at", UTC_TS, "when the decision was made"),
        ]
    ),
)

CONNECTION_TAGS = Table(
    name="connection_tags",
    key=("session_id", "tag_key"),
    description="The connection's tags at session time, one row per key.",
    schema=pa.schema(
        [
            _f("session_id", pa.string(), "session", nullable=False),
            _f("start_day", pa.date32(), "partition", nullable=False),
            _f("tag_key", pa.string(), "tag key, e.g. environment", nullable=False),
            _f("tag_value", pa.string(), "tag value, e.g. prod"),
        ]
    ),
)

SESSION_EVENTS = Table(
    name="session_events",
    key=("session_id", "seq"),
    description="The event stream, exact bytes: what was typed (i), output (o), errors (e); for RDP "
    "sessions the handshake (h) and screen bitmap updates (b).",
    schema=pa.schema(
        [
            _f("session_id", pa.string(), "session", nullable=False),
            _f("seq", pa.int64(), "position in the stream, from 0", nullable=False),
            _f("start_day", pa.date32(), "partition", nullable=False),
            _f("elapsed_seconds", pa.float64(), "seconds since the client connected"),
            _f("event_time", UTC_TS, "start_date + elapsed_seconds"),
            _f(
                "event_type",
                pa.string(),
                "i (input), o (output), e (error), h (RDP handshake), b (RDP bitmap update, JSON), "
                "or a newer type, as hoop sent it",
            ),
            _f(
                "payload", pa.binary(), "exact decoded bytes (null when HOOP_STORE_OUTPUT drops it)"
            ),
            _f("payload_text", pa.string(), "payload as UTF-8, invalid bytes replaced"),
            _f("payload_bytes", pa.int64(), "length of payload"),
            _f(
                "payload_sha256",
                pa.string(),
                "SHA-256 of a payload other than input not kept (HOOP_STORE_OUTPUT=hash)",
            ),
        ]
    ),
)

SYNC_WINDOWS = Table(
    name="sync_windows",
    key=("start_day", "window_start"),
    description="The ledger: every list window read, with counts that reconcile.",
    schema=pa.schema(
        [
            _f("start_day", pa.date32(), "partition", nullable=False),
            _f("window_start", UTC_TS, "inclusive lower bound sent to hoop", nullable=False),
            _f("window_end", UTC_TS, "inclusive upper bound sent to hoop", nullable=False),
            _f("sessions_listed", pa.int64(), "distinct sessions of this day listed in the window"),
            _f("sessions_loaded", pa.int64(), "of those, loaded into the tables"),
            _f("sessions_rejected", pa.int64(), "of those, written to rejects"),
            _f("pages", pa.int64(), "list pages read"),
            _f("requests", pa.int64(), "HTTP requests (list and get, retries included)"),
            _f("retries", pa.int64(), "requests repeated after a transient failure"),
            _f("started_at", UTC_TS, "when reading the window started"),
            _f("finished_at", UTC_TS, "when it finished"),
            _f("api_url", pa.string(), "gateway base URL"),
            _f("principal", pa.string(), "who the token is (email and groups)"),
        ]
    ),
)

REJECTS = Table(
    name="rejects",
    key=(),
    description="Records that could not be read or flattened, with the reason.",
    schema=pa.schema(
        [
            _f("start_day", pa.date32(), "partition", nullable=False),
            _f("session_id", pa.string(), "session id, if known"),
            _f("stage", pa.string(), "list, get or flatten", nullable=False),
            _f("reason", pa.string(), "what is wrong, for a person", nullable=False),
            _f("payload", pa.string(), "the offending record, truncated"),
            _f("seen_at", UTC_TS, "when it was seen", nullable=False),
        ]
    ),
)

RECORD_WARNINGS = Table(
    name="record_warnings",
    key=(),
    description="What a loaded session held that this version did not expect: a sub-field that was "
    "malformed (stored as null) or a value outside the known set (stored as it came).",
    schema=pa.schema(
        [
            _f("start_day", pa.date32(), "partition", nullable=False),
            _f("session_id", pa.string(), "the session, which was loaded", nullable=False),
            _f(
                "field",
                pa.string(),
                "where in the record, e.g. review.time_window.start_time",
                nullable=False,
            ),
            _f("value", pa.string(), "the value as hoop sent it (JSON text, truncated)"),
            _f(
                "kind",
                pa.string(),
                "malformed (the column is null) or unknown_value (kept as is)",
                nullable=False,
            ),
            _f("detail", pa.string(), "what is wrong, for a person"),
            _f("seen_at", UTC_TS, "when the record was read from hoop", nullable=False),
        ]
    ),
)

COMPLIANCE_FINDINGS = Table(
    name="compliance_findings",
    key=("rule", "session_id"),
    description="One row per (rule, session) that a compliance rule flags.",
    schema=pa.schema(
        [
            _f("rule", pa.string(), "rule id (file name in sql/compliance)", nullable=False),
            _f("session_id", pa.string(), "flagged session", nullable=False),
            _f("start_day", pa.date32(), "partition of the session"),
            _f("severity", pa.string(), "high, medium, low", nullable=False),
            _json("detail", "evidence columns of the rule"),
            _f("found_at", UTC_TS, "when the rules were run", nullable=False),
        ]
    ),
)

# Tables filled per day by the sync, in load order.
SYNC_LEDGER = Table(
    name="sync_ledger",
    key=("start_day",),
    description="The sync ledger's days (ledger/start_day=D.json), as of the last run: what was read "
    "and what is left. Replaced as a whole after each run.",
    schema=pa.schema(
        [
            _f("start_day", pa.date32(), "the day", nullable=False),
            _f(
                "listed_at",
                UTC_TS,
                "when the day was last listed completely, on the gateway's clock",
            ),
            _f("read_at", UTC_TS, "when a run last read the day"),
            _f("settled", pa.bool_(), "listed completely HOOP_SETTLE_HOURS or more after its end"),
            _f("loaded", pa.bool_(), "the warehouse holds the day's last raw file"),
            _f("sessions", pa.int64(), "sessions the ledger knows for the day"),
            _f("sessions_open", pa.int64(), "sessions not final (read again by later runs)"),
            _f("sessions_failing", pa.int64(), "sessions whose last read failed"),
            _f("gaps", pa.int64(), "list windows that could not be read completely"),
            _f(
                "error",
                pa.string(),
                "why the last run could not read the day at all (null: it could)",
            ),
            _f("error_failures", pa.int64(), "runs in a row that could not read the day"),
            _f("error_since", UTC_TS, "first of those runs"),
        ]
    ),
)

SYNC_LEDGER_SESSIONS = Table(
    name="sync_ledger_sessions",
    key=("session_id",),
    description="The sync ledger's sessions that are not final or whose last read failed: what later "
    "runs read again, and why. Replaced as a whole after each run.",
    schema=pa.schema(
        [
            _f("session_id", pa.string(), "session", nullable=False),
            _f("start_day", pa.date32(), "partition of the session", nullable=False),
            _f("read_at", UTC_TS, "when it was last read successfully"),
            _f(
                "final_from",
                UTC_TS,
                "from when its record as last read is final (null: not as it is)",
            ),
            _f("failures", pa.int64(), "reads in a row that failed"),
            _f("last_error", pa.string(), "cause of the last failed read"),
            _f("failing_since", UTC_TS, "first failed read of this run of failures"),
            _f(
                "stale_since",
                UTC_TS,
                "since when the warehouse holds an older copy kept after a failed read",
            ),
            _f(
                "gone_since",
                UTC_TS,
                "since when the gateway answers 404 for it (its rows are kept)",
            ),
        ]
    ),
)

LEDGER_TABLES: tuple[Table, ...] = (SYNC_LEDGER, SYNC_LEDGER_SESSIONS)

DAY_TABLES: tuple[Table, ...] = (
    SESSIONS,
    REVIEWS,
    REVIEW_GROUPS,
    CONNECTION_TAGS,
    SESSION_EVENTS,
    SYNC_WINDOWS,
    REJECTS,
    RECORD_WARNINGS,
)
ALL_TABLES: tuple[Table, ...] = (*DAY_TABLES, COMPLIANCE_FINDINGS)
TABLES: dict[str, Table] = {t.name: t for t in ALL_TABLES}


def duckdb_type(field: pa.Field) -> str:
    """The DuckDB type of a contract column."""
    meta = field.metadata or {}
    if b"duckdb_type" in meta:
        return str(meta[b"duckdb_type"].decode())
    t = field.type
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_list(t):
        return duckdb_type(pa.field("item", t.value_type)) + "[]"
    simple = {
        pa.string(): "VARCHAR",
        pa.int64(): "BIGINT",
        pa.int32(): "INTEGER",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
        pa.date32(): "DATE",
        pa.binary(): "BLOB",
        pa.time64("us"): "TIME",
    }
    try:
        return str(simple[t])
    except KeyError:
        raise TypeError(f"no DuckDB type for Arrow type {t} of column {field.name}") from None


def ddl(table: Table) -> str:
    """CREATE TABLE statement for a contract table."""
    cols = []
    for field in table.schema:
        null = "" if field.nullable else " NOT NULL"
        cols.append(f'    "{field.name}" {duckdb_type(field)}{null}')
    return f'CREATE TABLE IF NOT EXISTS "{table.name}" (\n' + ",\n".join(cols) + "\n)"
