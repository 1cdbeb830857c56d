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
-- hoop: gateway/api/review/review.go (validateReviewStatusTransition lets the owner of a review
--     approve it only when an admin)
-- note: Emails are compared case-insensitively: identity providers differ in the case they send.
--     hoop refuses self-approval to everyone but admins, so a finding is an admin approving their
--     own request. A review is reported once, on the session that asked for it; the sessions a
--     self-approved JIT grant let in are listed by the session_access view (access_review_id).
WITH self_approved AS MATERIALIZED (
    -- Approving groups whose reviewer is the session's user, found with one join on
    -- (session_id, lower-cased email) over the period's narrow rows. The session's own columns
    -- come along (one value per session; the row carries its review, its approvers and its
    -- tags), so sessions is read once.
    SELECT g.session_id,
           any_value(s.start_day) AS start_day,
           any_value(s.start_date) AS start_date,
           any_value(s.user_email) AS user_email,
           any_value(s.connection) AS connection,
           any_value(s.connection_tag_map[$env_tag]) AS environment,
           any_value(s.review_id) AS review_id,
           any_value(s.review.status) AS review_status,
           any_value(s.approved_by) AS approved_by,
           string_agg(g.group_name, ', ' ORDER BY g.group_name) AS self_approved_groups,
           min(g.reviewed_at) AS self_approved_at
    FROM review_groups AS g
    JOIN sessions AS s ON s.session_id = g.session_id
    WHERE in_period(s.start_day, $start, $end)
      AND in_period(g.start_day, $start, $end)
      AND g.status = 'APPROVED'
      AND lower(g.reviewer_email) = lower(s.user_email)
    GROUP BY g.session_id
)
SELECT
    unnest(finding_evidence(s)),
    s.self_approved_groups,
    s.self_approved_at
FROM self_approved AS s
ORDER BY s.start_date, s.session_id
