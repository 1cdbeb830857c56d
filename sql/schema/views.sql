-- Analyst views, created with the tables. Plain SQL over the contract tables.

-- One row per session with its review, the decision makers and the tags most rules need.
CREATE OR REPLACE VIEW session_overview AS
SELECT
    s.session_id, s.start_day, s.start_date, s.end_date, s.duration_seconds, s.status, s.verb,
    s.user_email, s.user_name, s.identity_type, s.connection, s.type, s.connection_subtype,
    s.exit_code, s.event_count, s.stream_status, s.is_final,
    env.tag_value AS environment,
    team.tag_value AS team,
    r.review_id, r.type AS review_type, r.status AS review_status, r.created_at AS review_created_at,
    r.revoke_at, r.time_window_start, r.time_window_end, r.min_approvals,
    (SELECT list(g.reviewer_email ORDER BY g.reviewed_at) FROM review_groups g
      WHERE g.review_id = r.review_id AND g.status = 'APPROVED') AS approvers,
    (SELECT bool_or(coalesce(g.forced_review, false)) FROM review_groups g
      WHERE g.review_id = r.review_id) AS forced_review
FROM sessions s
LEFT JOIN reviews r ON r.session_id = s.session_id
LEFT JOIN connection_tags env ON env.session_id = s.session_id AND env.tag_key = 'environment'
LEFT JOIN connection_tags team ON team.session_id = s.session_id AND team.tag_key = 'team';

-- Per-day reconciliation of the ledger: listed = loaded + rejected.
CREATE OR REPLACE VIEW day_reconciliation AS
WITH windows AS (
    SELECT
        start_day,
        sum(sessions_listed) AS sessions_listed,
        sum(sessions_loaded) AS sessions_loaded,
        sum(sessions_rejected) AS sessions_rejected,
        sum(requests) AS requests,
        sum(retries) AS retries,
        max(finished_at) AS synced_at
    FROM sync_windows
    GROUP BY start_day
)
SELECT
    w.start_day,
    w.sessions_listed,
    w.sessions_loaded,
    w.sessions_rejected,
    w.sessions_listed = w.sessions_loaded + w.sessions_rejected AS reconciled,
    w.requests,
    w.retries,
    w.synced_at,
    -- What the sync ledger still misses of the day (sync_ledger_sessions names the sessions):
    -- sessions whose last read failed (rejected, or loaded earlier and kept stale), list
    -- windows that could not be read, and sessions not final yet.
    coalesce(l.sessions_failing, 0) AS sessions_failing,
    coalesce(l.gaps, 0) AS listing_gaps,
    coalesce(l.sessions_open, 0) AS sessions_open,
    w.sessions_listed = w.sessions_loaded + w.sessions_rejected
        AND coalesce(l.sessions_failing, 0) = 0 AND coalesce(l.gaps, 0) = 0 AS complete
FROM windows AS w
LEFT JOIN sync_ledger AS l USING (start_day);

-- One row per RDP screen update (event_type 'b'): where on the screen it was drawn and its size,
-- read from the JSON the gateway records for it (hoop: gateway/rdp/recorder.go, BitmapEvent:
-- x, y, width, height, bits_per_pixel, compressed, data = base64 of the pixels). The columns are
-- null for a payload that is not kept (HOOP_STORE_OUTPUT=hash|none) or is not that JSON.
CREATE OR REPLACE VIEW rdp_frames AS
SELECT
    session_id, start_day, seq, elapsed_seconds, event_time,
    try_cast(frame ->> 'x' AS INTEGER) AS x,
    try_cast(frame ->> 'y' AS INTEGER) AS y,
    try_cast(frame ->> 'width' AS INTEGER) AS width,
    try_cast(frame ->> 'height' AS INTEGER) AS height,
    try_cast(frame ->> 'bits_per_pixel' AS INTEGER) AS bits_per_pixel,
    try_cast(frame ->> 'compressed' AS BOOLEAN) AS compressed,
    octet_length(try(from_base64(frame ->> 'data'))) AS bitmap_bytes,
    payload_bytes
FROM (
    SELECT *, try_cast(try(decode(payload)) AS JSON) AS frame
    FROM session_events
    WHERE event_type = 'b'
);
