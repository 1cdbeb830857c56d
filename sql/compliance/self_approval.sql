-- id: self_approval
-- title: Self-approved sessions
-- question: Which sessions were approved by the person who ran them (an approving reviewer's
--     email equals the session's user email)?
-- controls: SOC 2 CC6.1, CC6.3; ISO 27001 A.5.3, A.5.15; PCI DSS 7.2, 8.2
-- severity: high
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- note: Emails are compared case-insensitively: identity providers differ in the case they send.
WITH self_approved AS MATERIALIZED (
    -- Approving groups whose reviewer is the session's user, found with one join on
    -- (session_id, lower-cased email) over the period's narrow rows.
    SELECT g.session_id,
           string_agg(g.group_name, ', ' ORDER BY g.group_name) AS self_approved_groups,
           min(g.reviewed_at) AS self_approved_at
    FROM review_groups AS g
    JOIN sessions AS s ON s.session_id = g.session_id
    WHERE s.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
      AND g.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
      AND g.status = 'APPROVED'
      AND lower(g.reviewer_email) = lower(s.user_email)
    GROUP BY g.session_id
),
hit AS MATERIALIZED (
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection, s.review_id,
           x.self_approved_groups, x.self_approved_at
    FROM self_approved AS x
    JOIN sessions AS s ON s.session_id = x.session_id
    WHERE s.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
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
    r.status AS review_status,
    a.approvers,
    s.self_approved_groups,
    s.self_approved_at
FROM hit AS s
LEFT JOIN env ON env.session_id = s.session_id
LEFT JOIN reviews AS r ON r.review_id = s.review_id
LEFT JOIN approvers AS a ON a.review_id = s.review_id
ORDER BY s.start_date, s.session_id
