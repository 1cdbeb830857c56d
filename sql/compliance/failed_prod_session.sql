-- id: failed_prod_session
-- title: Failed sessions on production
-- question: Which production sessions ended with a non-zero exit code (254 = gateway error)?
-- controls: SOC 2 CC7.2, CC7.3; ISO 27001 A.8.15, A.8.16; PCI DSS 10.2.1, 10.4.1
-- severity: low
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- param: prod_env text = prod | Value of that tag that marks production.
-- note: Repeated failures on production are how probing and broken changes show up; a null
--     exit code means the session never ran or still runs, which is not a failure.
WITH hit AS MATERIALIZED (
    -- The rule's own condition and production first, on narrow rows; approvers are aggregated
    -- for the flagged reviews only.
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection,
           env.tag_value AS environment, s.review_id, s.review_status, s.exit_code, s.verb,
           s.connection_subtype
    FROM sessions AS s
    JOIN connection_tags AS env
        ON env.session_id = s.session_id AND env.tag_key = $env_tag AND env.tag_value = $prod_env
    WHERE s.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
      AND s.exit_code IS NOT NULL
      AND s.exit_code <> 0
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
    s.environment,
    s.review_id,
    s.review_status,
    a.approvers,
    s.exit_code,
    s.exit_code = 254 AS gateway_error,
    s.verb,
    s.connection_subtype
FROM hit AS s
LEFT JOIN approvers AS a ON a.review_id = s.review_id
ORDER BY s.start_date, s.session_id
