-- id: not_final_after_days
-- title: Sessions still not final after N days
-- question: Which sessions were still not final (open, awaiting review, or approved access not
--     yet expired) more than N days after they started, as of their last sync?
-- controls: SOC 2 CC6.2, CC6.3; ISO 27001 A.5.18, A.8.2; PCI DSS 7.2.4
-- severity: low
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- param: max_days int = 7 | Sessions not final this many days after they started are flagged.
-- hoop: gateway/transport/plugins/review/review.go (a JIT grant ends at revoke_at; a session still
--     connected keeps recording until the client leaves)
-- note: Age is measured at synced_at, not at query time, so the answer depends only on the
--     data: the sync re-reads sessions that are not final, so synced_at is recent for them.
--     Stale grants and forgotten requests are access that nobody is watching.
WITH hit AS MATERIALIZED (
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection,
           s.connection_tag_map[$env_tag] AS environment, s.review_id, s.approved_by,
           s.review.status AS review_status, s.review.type AS review_type,
           s.review.revoke_at AS revoke_at, s.status, s.synced_at
    FROM sessions AS s
    WHERE in_period(s.start_day, $start, $end)
      AND NOT coalesce(s.is_final, false)
      AND epoch(s.synced_at - s.start_date) > CAST($max_days AS BIGINT) * 86400
)
SELECT
    unnest(finding_evidence(s)),
    s.status AS session_status,
    s.review_type,
    s.revoke_at,
    s.synced_at,
    round(epoch(s.synced_at - s.start_date) / 86400.0, 1) AS age_days_at_sync
FROM hit AS s
ORDER BY s.start_date, s.session_id
