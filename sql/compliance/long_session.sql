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
-- hoop: gateway/models/session.go (start_date is set when the session is requested, end_date when
--     it ends)
-- note: Duration is end_date - start_date; running sessions have none and are reported by
--     not_final_after_days instead. For reviewed sessions start_date is the request time, so
--     the duration includes the wait for approval.
SELECT
    -- The session row carries the evidence (its tags, its review's approvers): one scan, no join.
    unnest(finding_evidence(s)),
    s.end_date,
    round(s.duration_seconds / 3600.0, 2) AS duration_hours,
    s.verb
-- The environment is the connection's tag $env_tag (the row carries its tags).
FROM (SELECT *, connection_tag_map[$env_tag] AS environment FROM sessions) AS s
WHERE in_period(s.start_day, $start, $end)
  AND s.duration_seconds > CAST($max_hours AS DOUBLE) * 3600
ORDER BY s.start_date, s.session_id
