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
-- hoop: gateway/api/review/review.go (doIndividualReview approves a review once min(groups asked,
--     min_approvals) groups approved; a rejecting or revoking group ends it at once)
-- note: Only reviews in APPROVED, PROCESSING or EXECUTED state (a REVOKED JIT review may have
--     revoked groups by design). When min_approvals is set, groups still PENDING are expected
--     (hoop approves once the quorum is met); without it hoop asks every group. Reviews approved
--     by break-glass are left to break_glass_approval, which lists every one of them. A review is
--     reported once, on the session that asked for it: the sessions a JIT grant let in share its
--     approval and are listed by the session_access view (access_review_id).
WITH candidate AS MATERIALIZED (
    -- Approved reviews of the period (a review has its session's start_day), on narrow rows: the
    -- only ones whose groups are tallied. Their sessions are looked up once a review is flagged.
    SELECT r.review_id, r.status AS review_status, r.min_approvals
    FROM reviews AS r
    WHERE in_period(r.start_day, $start, $end)
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
flagged AS MATERIALIZED (
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection,
           s.connection_tag_map[$env_tag] AS environment, c.*
    FROM checked AS c
    JOIN sessions AS s ON s.review_id = c.review_id
    WHERE in_period(s.start_day, $start, $end)
),
evidence AS (
    -- The text evidence, for the flagged reviews only.
    SELECT review_id,
           string_agg(DISTINCT reviewer_email, ', ' ORDER BY reviewer_email)
               FILTER (WHERE status = 'APPROVED') AS approvers,
           string_agg(group_name || '=' || coalesce(status, 'NULL'), ', ' ORDER BY group_name)
               FILTER (WHERE coalesce(status, '') <> 'APPROVED') AS groups_not_approved
    FROM review_groups
    WHERE review_id IN (SELECT review_id FROM flagged)
    GROUP BY review_id
)
SELECT
    unnest(finding_session(c)),
    x.approvers,
    c.min_approvals,
    c.approvals_required,
    c.groups_asked,
    c.groups_approved,
    x.groups_not_approved
FROM flagged AS c
LEFT JOIN evidence AS x ON x.review_id = c.review_id
ORDER BY c.start_date, c.session_id
