-- id: break_glass_approval
-- title: Break-glass (forced) approvals
-- question: Which sessions were approved by a break-glass (forced) review, skipping the normal
--     approval quorum?
-- controls: SOC 2 CC6.1, CC6.2, CC7.2; ISO 27001 A.5.15, A.5.18, A.8.2; PCI DSS 7.2, 10.2.1
-- severity: medium
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- hoop: gateway/api/review/review.go (doForcedReview marks the forcing group forced_review and
--     approves the review at once, whatever the quorum)
-- note: Break-glass is allowed by design; each use needs an after-the-fact review, so every one
--     is listed, with the ticket (jira_issue_key) that should justify it. A forced review is
--     reported once, on the session that asked for it; the sessions a forced JIT grant let in
--     are listed by the session_access view (access_review_id).
WITH forced AS MATERIALIZED (
    SELECT g.review_id,
           string_agg(DISTINCT g.reviewer_email, ', ' ORDER BY g.reviewer_email) AS forced_by,
           string_agg(DISTINCT g.group_name, ', ' ORDER BY g.group_name) AS forced_groups,
           min(g.reviewed_at) AS forced_at
    FROM review_groups AS g
    WHERE g.forced_review AND g.status = 'APPROVED'
      AND in_period(g.start_day, $start, $end)
    GROUP BY g.review_id
),
hit AS MATERIALIZED (
    -- The session row carries its review and its tags (kept by the load).
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection,
           s.connection_tag_map[$env_tag] AS environment, s.review_id,
           s.review.status AS review_status,
           s.review.force_approval_groups AS force_approval_groups, s.jira_issue_key
    FROM sessions AS s
    WHERE in_period(s.start_day, $start, $end)
      AND s.review IS NOT NULL
      AND s.review_id IN (SELECT review_id FROM forced)
)
SELECT
    unnest(finding_session(s)),
    f.forced_by AS approvers,
    f.forced_groups,
    f.forced_at,
    array_to_string(s.force_approval_groups, ', ') AS force_approval_groups,
    s.jira_issue_key
FROM forced AS f
JOIN hit AS s ON s.review_id = f.review_id
ORDER BY s.start_date, s.session_id
