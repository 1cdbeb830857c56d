-- id: prod_access_without_approval
-- title: Production access without an approved review
-- question: Which production sessions had access without an approved review: no review at all,
--     or a review never approved (PENDING, REJECTED, UNKNOWN) while the session shows activity?
-- controls: SOC 2 CC6.1, CC6.3; ISO 27001 A.5.15, A.8.2; PCI DSS 7.2
-- severity: high
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- param: prod_env text = prod | Value of that tag that marks production.
-- note: A session without a review ran as soon as it was opened, so it counts as access even
--     without events. A review that was never approved only counts when the session shows
--     activity (events or an exit code); otherwise the gateway held it, as designed.
--     APPROVED, PROCESSING, EXECUTED and REVOKED all mean the review was approved at some point.
SELECT
    s.session_id,
    s.start_day,
    s.start_date,
    s.user_email,
    s.connection,
    env.tag_value AS environment,
    s.review_id,
    r.status AS review_status,
    s.verb,
    s.status AS session_status,
    s.exit_code,
    s.event_count,
    CASE WHEN s.review_id IS NULL THEN 'no review' ELSE 'review not approved' END AS reason
FROM sessions AS s
-- Production is an inner join on the tag value (the same as filtering the left-joined tag).
JOIN connection_tags AS env
    ON env.session_id = s.session_id AND env.tag_key = $env_tag AND env.tag_value = $prod_env
LEFT JOIN reviews AS r ON r.review_id = s.review_id
WHERE s.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                      AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
  AND (
        s.review_id IS NULL
        OR (coalesce(r.status, 'UNKNOWN') NOT IN ('APPROVED', 'PROCESSING', 'EXECUTED', 'REVOKED')
            AND (s.event_count > 0 OR s.exit_code IS NOT NULL))
      )
ORDER BY s.start_date, s.session_id
