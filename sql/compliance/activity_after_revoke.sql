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
    -- Sessions in the period whose review has a revoke_at and whose last event is past it: the
    -- only candidates. A session row carries its review, its tags and the first and last
    -- event_time of its stream (kept by the load).
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection,
           s.connection_tag_map[$env_tag] AS environment, s.review_id, s.approved_by,
           s.first_event_time, s.last_event_time, s.timed_event_count,
           s.review.status AS review_status, s.review.type AS review_type,
           s.review.revoke_at AS revoke_at,
           s.review.revoke_at + to_seconds(CAST($grace_seconds AS BIGINT)) AS grace_end
    FROM sessions AS s
    WHERE s.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
      AND s.review.revoke_at IS NOT NULL
      AND s.last_event_time > s.review.revoke_at + to_seconds(CAST($grace_seconds AS BIGINT))
),
straddling AS MATERIALIZED (
    -- Events on both sides of the end: only these sessions' events are read. A session whose
    -- first event is already past the end has all its (timed) events past it.
    SELECT j.session_id, j.start_day, j.grace_end
    FROM jit AS j
    WHERE j.first_event_time <= j.grace_end
),
counted AS MATERIALIZED (
    SELECT e.session_id,
           count(*) AS events_after_revoke,
           min(e.event_time) AS first_event_after_revoke,
           max(e.event_time) AS last_event_after_revoke
    FROM session_events AS e
    JOIN straddling AS j ON j.session_id = e.session_id AND j.start_day = e.start_day
    WHERE e.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
      AND e.event_time > j.grace_end
    GROUP BY e.session_id
),
late AS (
    SELECT j.session_id,
           j.timed_event_count AS events_after_revoke,
           j.first_event_time AS first_event_after_revoke,
           j.last_event_time AS last_event_after_revoke
    FROM jit AS j
    WHERE j.first_event_time > j.grace_end
    UNION ALL
    SELECT * FROM counted
)
SELECT
    s.session_id,
    s.start_day,
    s.start_date,
    s.user_email,
    s.connection,
    s.environment,
    s.review_id,
    s.review_status,
    array_to_string(s.approved_by, ', ') AS approvers,
    s.review_type,
    s.revoke_at,
    l.events_after_revoke,
    l.first_event_after_revoke,
    l.last_event_after_revoke,
    round(epoch(l.last_event_after_revoke - s.revoke_at), 3) AS seconds_past_revoke
FROM late AS l
JOIN jit AS s ON s.session_id = l.session_id
ORDER BY s.start_date, s.session_id
