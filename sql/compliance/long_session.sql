-- id: long_session
-- title: Sessions longer than the allowed duration
-- question: Which finished sessions lasted longer than the allowed number of hours?
-- controls: SOC 2 CC6.1, CC7.2; ISO 27001 A.8.2, A.8.5; PCI DSS 8.2.8
-- severity: low
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- param: max_hours float = 8 | Sessions lasting more than this many hours are flagged.
-- note: Duration is end_date - start_date; running sessions have none and are reported by
--     not_final_after_days instead. For reviewed sessions start_date is the request time, so
--     the duration includes the wait for approval.
WITH hit AS MATERIALIZED (
    -- Narrow rows, filtered by the rule's own condition before anything is joined: the tag and
    -- the approvers are looked up for the flagged sessions only.
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection, s.review_id,
           s.review_status, s.end_date, s.duration_seconds, s.verb
    FROM sessions AS s
    WHERE s.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
      AND s.duration_seconds > CAST($max_hours AS DOUBLE) * 3600
),
env AS (
    SELECT t.session_id, t.tag_value
    FROM connection_tags AS t
    WHERE t.tag_key = $env_tag
      AND t.session_id IN (SELECT session_id FROM hit)
),
approvers AS (
    SELECT g.review_id,
           string_agg(DISTINCT g.reviewer_email, ', ' ORDER BY g.reviewer_email) AS approvers
    FROM review_groups AS g
    WHERE g.status = 'APPROVED'
      AND g.review_id IN (SELECT review_id FROM hit)
    GROUP BY g.review_id
)
SELECT
    s.session_id,
    s.start_day,
    s.start_date,
    s.user_email,
    s.connection,
    env.tag_value AS environment,
    s.review_id,
    s.review_status,
    a.approvers,
    s.end_date,
    round(s.duration_seconds / 3600.0, 2) AS duration_hours,
    s.verb
FROM hit AS s
LEFT JOIN env ON env.session_id = s.session_id
LEFT JOIN approvers AS a ON a.review_id = s.review_id
ORDER BY s.start_date, s.session_id
