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
WITH candidate AS MATERIALIZED (
    -- Approved reviews of the period, on narrow rows: the only ones whose groups are tallied.
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection, s.review_id,
           r.status AS review_status_now, r.min_approvals
    FROM sessions AS s
    JOIN reviews AS r ON r.review_id = s.review_id
    WHERE s.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
      AND r.status IN ('APPROVED', 'PROCESSING', 'EXECUTED')
),
per_group AS (
    -- Two-level tally: per (review, group) first, so the distinct counts below are plain counts.
    SELECT g.review_id,
           g.group_name,
           bool_or(g.status = 'APPROVED') AS approved,
           count(*) FILTER (WHERE g.status IN ('REJECTED', 'REVOKED')) AS refusing,
           bool_or(coalesce(g.forced_review, false) AND g.status = 'APPROVED') AS break_glass
    FROM review_groups AS g
    WHERE g.review_id IN (SELECT review_id FROM candidate)
    GROUP BY g.review_id, g.group_name
),
tally AS (
    SELECT review_id,
           count(group_name) AS groups_asked,
           count(group_name) FILTER (WHERE approved) AS groups_approved,
           sum(refusing) AS groups_refusing,
           bool_or(break_glass) AS break_glass
    FROM per_group
    GROUP BY review_id
),
checked AS MATERIALIZED (
    SELECT c.*,
           coalesce(t.groups_asked, 0) AS groups_asked,
           coalesce(t.groups_approved, 0) AS groups_approved,
           coalesce(c.min_approvals, t.groups_asked, 1) AS approvals_required
    FROM candidate AS c
    LEFT JOIN tally AS t ON t.review_id = c.review_id
    WHERE NOT coalesce(t.break_glass, false)
      AND (coalesce(t.groups_approved, 0) < coalesce(c.min_approvals, t.groups_asked, 1)
           OR coalesce(t.groups_refusing, 0) > 0)
),
evidence AS (
    -- The text evidence, for the flagged reviews only.
    SELECT review_id,
           string_agg(DISTINCT reviewer_email, ', ' ORDER BY reviewer_email)
               FILTER (WHERE status = 'APPROVED') AS approvers,
           string_agg(group_name || '=' || coalesce(status, 'NULL'), ', ' ORDER BY group_name)
               FILTER (WHERE coalesce(status, '') <> 'APPROVED') AS groups_not_approved
    FROM review_groups
    WHERE review_id IN (SELECT review_id FROM checked)
    GROUP BY review_id
),
env AS (
    SELECT t.session_id, t.tag_value
    FROM connection_tags AS t
    WHERE t.tag_key = $env_tag
      AND t.session_id IN (SELECT session_id FROM checked)
)
SELECT
    c.session_id,
    c.start_day,
    c.start_date,
    c.user_email,
    c.connection,
    env.tag_value AS environment,
    c.review_id,
    c.review_status_now AS review_status,
    x.approvers,
    c.min_approvals,
    c.approvals_required,
    c.groups_asked,
    c.groups_approved,
    x.groups_not_approved
FROM checked AS c
LEFT JOIN evidence AS x ON x.review_id = c.review_id
LEFT JOIN env ON env.session_id = c.session_id
ORDER BY c.start_date, c.session_id
