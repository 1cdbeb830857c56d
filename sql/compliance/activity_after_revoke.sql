-- id: activity_after_revoke
-- title: Activity after just-in-time access ended
-- question: Which sessions with just-in-time access (their own JIT review, or another session's
--     JIT grant that let them in) recorded events after that grant had ended?
-- controls: SOC 2 CC6.2, CC6.3, CC7.2; ISO 27001 A.5.18, A.8.2; PCI DSS 7.2, 10.2.1
-- severity: high
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- param: grace_seconds int = 0 | Events up to this many seconds past the grant's end are tolerated.
-- hoop: gateway/api/review/review.go (revoke_at = approval time + access_duration on every
--     approval, so a one-time review's revoke_at is its approval and ends nothing; a revoke sets
--     REVOKED and keeps revoke_at, the revoking group's review_date is when access ended)
-- hoop: gateway/transport/plugins/review/review.go (a JIT grant lets later sessions of the same
--     user and connection in; a session still connected when access ends keeps recording)
-- note: The grants and the sessions they let in come from the views session_access is made of
--     (jit_grant, jit_grant_coverage); grant_end is revoke_at, or the revoke when that came first. One-time reviews are never reported.
--     event_time is start_date + elapsed seconds, and elapsed counts from when the client
--     connected, which is never before start_date. The real event time is therefore at or after
--     event_time, so an event_time past the grant's end is certainly past it. hoop gives a
--     session let in by a grant a connection deadline of access_duration from its connect, which
--     can outlast the grant: its events after the grant's end are reported all the same, as
--     access the approval did not cover.
WITH access AS MATERIALIZED (
    -- JIT access of the period and when its grant ended: the two kinds of JIT access rows of
    -- session_access, read from the views it is made of (cheaper than its row per session).
    SELECT g.grant_session_id AS session_id, g.grant_session_start_day AS start_day,
           'own_review' AS access_via, g.review_id AS access_review_id,
           g.review_status AS access_review_status, g.grant_session_id, g.grant_end
    FROM jit_grant AS g
    WHERE in_period(g.grant_session_start_day, $start, $end)
    UNION ALL
    SELECT c.session_id, c.start_day, 'jit_grant', c.review_id, c.review_status,
           c.grant_session_id, c.grant_end
    FROM jit_grant_coverage AS c
    WHERE in_period(c.start_day, $start, $end)
),
jit AS MATERIALIZED (
    -- Only the sessions whose last event is past the end are candidates. A session row carries
    -- its tags and the first and last event_time of its stream (kept by the load).
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection,
           s.connection_tag_map[$env_tag] AS environment, a.access_via,
           a.access_review_id AS review_id, a.access_review_status AS review_status,
           a.grant_session_id, a.grant_end,
           a.grant_end + to_seconds(CAST($grace_seconds AS BIGINT)) AS grace_end,
           s.first_event_time, s.last_event_time, s.timed_event_count
    FROM sessions AS s
    JOIN access AS a ON a.session_id = s.session_id AND a.start_day = s.start_day
    WHERE in_period(s.start_day, $start, $end)
      AND s.last_event_time > a.grant_end + to_seconds(CAST($grace_seconds AS BIGINT))
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
    WHERE in_period(e.start_day, $start, $end)
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
    unnest(finding_session(s)),
    array_to_string(g.approved_by, ', ') AS approvers,
    s.access_via,
    s.grant_session_id,
    g.review.revoke_at AS revoke_at,
    s.grant_end,
    l.events_after_revoke,
    l.first_event_after_revoke,
    l.last_event_after_revoke,
    round(epoch(l.last_event_after_revoke - s.grant_end), 3) AS seconds_past_grant_end
FROM late AS l
JOIN jit AS s ON s.session_id = l.session_id
-- The grant's own session: its review's revoke_at and approvers (a grant crosses days).
LEFT JOIN (
    SELECT x.session_id, x.approved_by, x.review
    FROM sessions AS x
    WHERE x.session_id IN (SELECT grant_session_id FROM jit)
) AS g ON g.session_id = s.grant_session_id
ORDER BY s.start_date, s.session_id
