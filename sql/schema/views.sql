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

-- Access through hoop's reviews: which review let each session in, and until when. Three views,
-- from the grants to every session:
--   jit_grant           one row per just-in-time grant (an approved JIT review) and its window;
--   jit_grant_coverage  one row per session without a review of its own that a grant let in;
--   session_access      one row per session: how it got access (the other two, for every row).
-- hoop: gateway/transport/plugins/review/review.go and gateway/models/reviews.go
-- (GetApprovedReviewJit). A session that opens with no review of its own is let through by the
-- most recently created JIT review with status APPROVED of the same org, owner (user_id) and
-- connection when its revoke_at is not before the connect time; that session has review null.
-- The record names the connection, not its id, so grants are matched by connection name.
-- hoop: gateway/api/review/review.go (doReview). Every approval sets revoke_at = approval time +
-- access_duration (0 for one-time reviews: their revoke_at is the approval time and ends nothing).
-- A revoke sets status REVOKED and leaves revoke_at alone; the revoking group's reviewed_at is
-- when the grant ended, and the grant lets no session in after that.
-- Grants cross days (approved at 23:00, used after midnight), so the views span the warehouse.

-- grant_start = revoke_at - access_duration (the approval); grant_end = revoke_at, or the revoke
-- when that came first. Only APPROVED and REVOKED reviews: only an approved JIT review can be
-- revoked, and revoke_at is also set when a JIT review is created through the API, before any
-- approval (gateway/api/session/session.go), so the status decides, not revoke_at.
CREATE OR REPLACE VIEW jit_grant AS
SELECT
    s.review_id,
    s.session_id AS grant_session_id,
    s.start_day AS grant_session_start_day,
    s.org_id,
    s.user_id,
    s.user_email,
    s.connection,
    s.review.status AS review_status,
    s.review.created_at AS created_at,
    s.review.revoke_at AS revoke_at,
    s.review.revoke_at - to_microseconds(CAST(
        round(coalesce(s.review.access_duration_seconds, 0) * 1e6) AS BIGINT)) AS grant_start,
    CASE WHEN s.review.status = 'REVOKED'
         THEN least(s.review.revoke_at, coalesce(x.revoked_at, s.review.revoke_at))
         ELSE s.review.revoke_at END AS grant_end
-- A session row carries its review (kept by the load): no join with reviews.
FROM sessions AS s
LEFT JOIN (
    SELECT review_id, min(reviewed_at) AS revoked_at
    FROM review_groups
    WHERE status = 'REVOKED'
    GROUP BY review_id
) AS x ON x.review_id = s.review_id
WHERE s.review.type = 'jit'
  AND s.review.status IN ('APPROVED', 'REVOKED')
  AND s.review.revoke_at IS NOT NULL;

-- A session without a review of its own is covered by a grant of the same org, user_id and
-- connection when grant_start <= start_date < grant_end; of several, the latest created (hoop's
-- lookup orders by created_at), then the latest approved, then the largest review_id.
CREATE OR REPLACE VIEW jit_grant_coverage AS
WITH grant_day AS (
    -- Each grant once per UTC day it spans, so that a session meets only the grants of its own
    -- day (an equality join) instead of every grant of its user and connection.
    SELECT d.*, CAST(timezone('UTC', d.grant_start) AS DATE) + CAST(d.n AS INTEGER) AS day
    FROM (
        SELECT g.*,
               unnest(range(datediff('day', CAST(timezone('UTC', g.grant_start) AS DATE),
                                            CAST(timezone('UTC', g.grant_end) AS DATE)) + 1)) AS n
        FROM jit_grant AS g
        WHERE g.grant_start < g.grant_end
    ) AS d
),
matched AS (
    SELECT
        s.session_id, s.start_day, g.review_id, g.grant_session_id, g.review_status,
        g.grant_start, g.grant_end,
        -- start_day in the partition (one per session anyway) lets a filter on it reach the scan.
        row_number() OVER (
            PARTITION BY s.session_id, s.start_day
            ORDER BY g.created_at DESC, g.grant_start DESC, g.review_id DESC
        ) AS pick
    FROM sessions AS s
    JOIN grant_day AS g
        ON g.day = s.start_day
       AND g.user_id = s.user_id
       AND g.connection = s.connection
       AND g.org_id IS NOT DISTINCT FROM s.org_id
       AND s.start_date >= g.grant_start
       AND s.start_date < g.grant_end
    WHERE s.review_id IS NULL
)
SELECT session_id, start_day, review_id, grant_session_id, review_status, grant_start, grant_end
FROM matched
WHERE pick = 1;

-- One row per session:
--   access_via     'own_review' (a review of its own, whatever its status), 'jit_grant' (none of
--                  its own, let in by another session's grant), NULL (neither: the connection
--                  asks for no review, or the session ran unreviewed);
--   access_review_id, access_review_type, access_review_status   that review;
--   grant_session_id   the session that asked for it;
--   grant_start, grant_end   the JIT grant's window; NULL for one-time and unapproved reviews.
CREATE OR REPLACE VIEW session_access AS
SELECT
    s.session_id,
    s.start_day,
    CASE WHEN s.review_id IS NOT NULL THEN 'own_review'
         WHEN c.review_id IS NOT NULL THEN 'jit_grant' END AS access_via,
    coalesce(s.review_id, c.review_id) AS access_review_id,
    CASE WHEN s.review_id IS NOT NULL THEN s.review.type
         WHEN c.review_id IS NOT NULL THEN 'jit' END AS access_review_type,
    CASE WHEN s.review_id IS NOT NULL THEN s.review.status ELSE c.review_status END
        AS access_review_status,
    CASE WHEN s.review_id IS NOT NULL THEN s.session_id ELSE c.grant_session_id END
        AS grant_session_id,
    CASE WHEN s.review_id IS NOT NULL THEN g.grant_start ELSE c.grant_start END AS grant_start,
    CASE WHEN s.review_id IS NOT NULL THEN g.grant_end ELSE c.grant_end END AS grant_end
FROM sessions AS s
LEFT JOIN jit_grant AS g ON g.review_id = s.review_id
LEFT JOIN jit_grant_coverage AS c ON c.session_id = s.session_id AND c.start_day = s.start_day;
