-- id: insufficient_approvals
-- title: Approved with too few approvals
-- question: Which approved reviews have fewer approving groups than required (min_approvals, or
--     every asked group when min_approvals is not set), or a group that rejected or revoked?
-- controls: SOC 2 CC6.1, CC6.3; ISO 27001 A.5.3, A.5.15; PCI DSS 7.2
-- severity: high
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- note: Only reviews in APPROVED, PROCESSING or EXECUTED state (a REVOKED JIT review may have
--     revoked groups by design). When min_approvals is set, groups still PENDING are expected
--     (hoop approves once the quorum is met); without it hoop asks every group. Reviews approved
--     by break-glass are left to break_glass_approval, which lists every one of them.
WITH scope AS (
    SELECT s.*, env.tag_value AS environment
    FROM sessions AS s
    LEFT JOIN connection_tags AS env
        ON env.session_id = s.session_id AND env.tag_key = $env_tag
    WHERE s.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
),
tally AS (
    SELECT review_id,
           count(DISTINCT group_name) AS groups_asked,
           count(DISTINCT group_name) FILTER (WHERE status = 'APPROVED') AS groups_approved,
           count(*) FILTER (WHERE status IN ('REJECTED', 'REVOKED')) AS groups_refusing,
           bool_or(coalesce(forced_review, false) AND status = 'APPROVED') AS break_glass,
           string_agg(DISTINCT reviewer_email, ', ' ORDER BY reviewer_email)
               FILTER (WHERE status = 'APPROVED') AS approvers,
           string_agg(group_name || '=' || coalesce(status, 'NULL'), ', ' ORDER BY group_name)
               FILTER (WHERE coalesce(status, '') <> 'APPROVED') AS groups_not_approved
    FROM review_groups
    GROUP BY review_id
),
checked AS (
    SELECT s.*,
           r.status AS review_status_now,
           r.min_approvals,
           coalesce(t.groups_asked, 0) AS groups_asked,
           coalesce(t.groups_approved, 0) AS groups_approved,
           coalesce(r.min_approvals, t.groups_asked, 1) AS approvals_required,
           coalesce(t.groups_refusing, 0) AS groups_refusing,
           t.approvers,
           t.groups_not_approved
    FROM scope AS s
    JOIN reviews AS r ON r.review_id = s.review_id
    LEFT JOIN tally AS t ON t.review_id = s.review_id
    WHERE r.status IN ('APPROVED', 'PROCESSING', 'EXECUTED')
      AND NOT coalesce(t.break_glass, false)
)
SELECT
    c.session_id,
    c.start_day,
    c.start_date,
    c.user_email,
    c.connection,
    c.environment,
    c.review_id,
    c.review_status_now AS review_status,
    c.approvers,
    c.min_approvals,
    c.approvals_required,
    c.groups_asked,
    c.groups_approved,
    c.groups_not_approved
FROM checked AS c
WHERE c.groups_approved < c.approvals_required
   OR c.groups_refusing > 0
ORDER BY c.start_date, c.session_id
