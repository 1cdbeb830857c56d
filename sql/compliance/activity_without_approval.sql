-- id: activity_without_approval
-- title: Activity on a pending or rejected review
-- question: Which sessions whose review is PENDING or REJECTED still have events or an exit
--     code, although the gateway should have held them?
-- controls: SOC 2 CC6.1, CC7.2; ISO 27001 A.5.15, A.8.2, A.8.16; PCI DSS 7.2, 10.2
-- severity: high
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- hoop: gateway/transport/plugins/review/review.go (at SessionOpen a session whose own one-time
--     review is not APPROVED or PROCESSING is held; a pending or rejected JIT review lets nothing
--     in)
-- note: Every environment, not only production: a review the gateway did not enforce is a
--     control failure wherever it happens. A session is judged by its own review, as in the
--     session_access view (a session with a review of its own is attributed to it): a session
--     that a JIT grant let in has no review of its own and is never reported here.
WITH hit AS MATERIALIZED (
    -- The session row carries its review and its tags (kept by the load).
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection,
           s.connection_tag_map[$env_tag] AS environment, s.review_id,
           s.review.status AS review_status, s.review.rejection_reason AS rejection_reason,
           s.status AS session_status, s.exit_code, s.event_count
    FROM sessions AS s
    WHERE in_period(s.start_day, $start, $end)
      AND s.review.status IN ('PENDING', 'REJECTED')
      AND (s.event_count > 0 OR s.exit_code IS NOT NULL)
),
deciders AS (
    SELECT g.review_id,
           string_agg(DISTINCT g.reviewer_email, ', ' ORDER BY g.reviewer_email) AS reviewers
    FROM review_groups AS g
    WHERE g.reviewer_email IS NOT NULL
      AND g.review_id IN (SELECT review_id FROM hit)
    GROUP BY g.review_id
)
SELECT
    unnest(finding_session(s)),
    d.reviewers,
    s.rejection_reason,
    s.session_status,
    s.exit_code,
    s.event_count
FROM hit AS s
LEFT JOIN deciders AS d ON d.review_id = s.review_id
ORDER BY s.start_date, s.session_id
