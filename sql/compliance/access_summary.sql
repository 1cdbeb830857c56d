-- id: access_summary
-- title: Access by user, connection and environment
-- question: Who accessed which connection in which environment, how often and with what
--     outcome (the periodic user access review)?
-- controls: SOC 2 CC6.2, CC6.3; ISO 27001 A.5.18, A.8.2; PCI DSS 7.2.4
-- severity: info
-- kind: summary
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- hoop: gateway/models/session.go (a session row: user, connection, review, exit_code; a session
--     ended by the credential sweeper is done with an end date and a null exit_code,
--     SetSessionCredentialsRevokedAt)
-- note: One row per (user_email, connection, environment); an untagged connection shows an
--     empty environment.
WITH scope AS (
    SELECT s.*, s.connection_tag_map[$env_tag] AS environment
    FROM sessions AS s
    WHERE in_period(s.start_day, $start, $end)
)
SELECT
    s.user_email,
    s.connection,
    s.environment,
    string_agg(DISTINCT s.identity_type, ', ' ORDER BY s.identity_type) AS identity_types,
    count(*) AS sessions,
    count(DISTINCT s.start_day) AS active_days,
    min(s.start_date) AS first_session,
    max(s.start_date) AS last_session,
    count(s.review_id) AS reviewed_sessions,
    count(*) FILTER (WHERE s.exit_code IS NOT NULL AND s.exit_code <> 0) AS failed_sessions,
    round(coalesce(sum(s.duration_seconds), 0) / 3600.0, 2) AS total_hours
FROM scope AS s
GROUP BY s.user_email, s.connection, s.environment
ORDER BY sessions DESC, s.user_email, s.connection, s.environment
