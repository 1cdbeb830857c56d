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
SELECT
    -- The session row carries the evidence (its tags, its review's approvers): one scan, no join.
    s.session_id,
    s.start_day,
    s.start_date,
    s.user_email,
    s.connection,
    s.connection_tag_map[$env_tag] AS environment,
    s.review_id,
    s.review_status,
    array_to_string(s.approved_by, ', ') AS approvers,
    s.exit_code,
    s.exit_code = 254 AS gateway_error,
    s.verb,
    s.connection_subtype
FROM sessions AS s
WHERE s.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                      AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
  AND s.exit_code IS NOT NULL
  AND s.exit_code <> 0
  AND s.connection_tag_map[$env_tag] = $prod_env
ORDER BY s.start_date, s.session_id
