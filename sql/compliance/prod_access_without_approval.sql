-- id: prod_access_without_approval
-- title: Production access without an approved review
-- question: Which production sessions had access without an approved review: no review of their
--     own and no just-in-time grant covering them, or a review never approved (PENDING, REJECTED,
--     UNKNOWN) while the session shows activity?
-- controls: SOC 2 CC6.1, CC6.3; ISO 27001 A.5.15, A.8.2; PCI DSS 7.2
-- severity: high
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- param: prod_env text = prod | Value of that tag that marks production.
-- hoop: gateway/transport/plugins/review/review.go (a session without a review of its own is
--     let through by an approved JIT grant of the same user and connection, GetApprovedReviewJit
--     in gateway/models/reviews.go)
-- note: Attribution comes from the session_access view: a session without a review of its own
--     that a JIT grant covered was approved by that grant and is not reported. A session with
--     neither ran as soon as it was opened, so it counts as access even without events. A review
--     of its own that was never approved only counts when the session shows activity (events or
--     an exit code); otherwise the gateway held it, as designed. APPROVED, PROCESSING, EXECUTED
--     and REVOKED all mean the review was approved at some point.
WITH candidate AS MATERIALIZED (
    -- A session row carries its connection's tags and its review (kept by the load).
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection,
           s.connection_tag_map[$env_tag] AS environment, s.review_id,
           s.review.status AS review_status, s.verb, s.status AS session_status, s.exit_code,
           s.event_count
    FROM sessions AS s
    WHERE in_period(s.start_day, $start, $end)
      AND s.connection_tag_map[$env_tag] = $prod_env
      AND (
            s.review_id IS NULL
            OR (coalesce(s.review.status, 'UNKNOWN')
                    NOT IN ('APPROVED', 'PROCESSING', 'EXECUTED', 'REVOKED')
                AND (s.event_count > 0 OR s.exit_code IS NOT NULL))
          )
),
granted AS (
    -- The sessions of the period a JIT grant covered (jit_grant_coverage is the part of
    -- session_access that this rule needs).
    SELECT a.session_id
    FROM jit_grant_coverage AS a
    WHERE in_period(a.start_day, $start, $end)
)
SELECT
    unnest(finding_session(c)),
    c.verb,
    c.session_status,
    c.exit_code,
    c.event_count,
    CASE WHEN c.review_id IS NULL THEN 'no review' ELSE 'review not approved' END AS reason
FROM candidate AS c
WHERE c.review_id IS NOT NULL
   OR c.session_id NOT IN (SELECT session_id FROM granted)
ORDER BY c.start_date, c.session_id
