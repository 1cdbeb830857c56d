-- id: activity_after_revoke
-- title: Activity after just-in-time access ended
-- question: Which sessions recorded events after their review's revoke_at, when the
--     just-in-time access had ended?
-- controls: SOC 2 CC6.2, CC6.3, CC7.2; ISO 27001 A.5.18, A.8.2; PCI DSS 7.2, 10.2.1
-- severity: high
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- param: grace_seconds int = 0 | Events up to this many seconds after revoke_at are tolerated.
-- note: event_time is start_date + elapsed seconds, and elapsed counts from when the client
--     connected, which is never before start_date. The real event time is therefore at or after
--     event_time, so an event_time past revoke_at is certainly past it.
WITH jit AS MATERIALIZED (
    -- Sessions in the period whose review has a revoke_at: the only ones whose events matter.
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection, s.review_id,
           r.status AS review_status, r.type AS review_type, r.revoke_at,
           r.revoke_at + to_seconds(CAST($grace_seconds AS BIGINT)) AS grace_end
    FROM sessions AS s
    JOIN reviews AS r ON r.review_id = s.review_id
    WHERE s.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
      AND r.revoke_at IS NOT NULL
),
late AS MATERIALIZED (
    -- One pass over the events of the period (start_day is every table's partition), joined to
    -- the JIT sessions; the time condition is exact, the start_day and lower bound only prune.
    SELECT e.session_id,
           count(*) AS events_after_revoke,
           min(e.event_time) AS first_event_after_revoke,
           max(e.event_time) AS last_event_after_revoke
    FROM session_events AS e
    JOIN jit AS j ON j.session_id = e.session_id
    WHERE e.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
      AND e.event_time > j.grace_end
    GROUP BY e.session_id
),
env AS (
    SELECT t.session_id, t.tag_value
    FROM connection_tags AS t
    WHERE t.tag_key = $env_tag
      AND t.session_id IN (SELECT session_id FROM late)
),
approvers AS (
    SELECT g.review_id,
           string_agg(DISTINCT g.reviewer_email, ', ' ORDER BY g.reviewer_email) AS approvers
    FROM review_groups AS g
    WHERE g.status = 'APPROVED'
      AND g.review_id IN (SELECT j.review_id FROM jit AS j JOIN late AS l USING (session_id))
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
    s.review_type,
    s.revoke_at,
    l.events_after_revoke,
    l.first_event_after_revoke,
    l.last_event_after_revoke,
    round(epoch(l.last_event_after_revoke - s.revoke_at), 3) AS seconds_past_revoke
FROM late AS l
JOIN jit AS s ON s.session_id = l.session_id
LEFT JOIN env ON env.session_id = s.session_id
LEFT JOIN approvers AS a ON a.review_id = s.review_id
ORDER BY s.start_date, s.session_id
