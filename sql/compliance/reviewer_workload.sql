-- id: reviewer_workload
-- title: Reviewer workload and approval latency
-- question: Who reviews access requests, how many decisions each made, and how long approvals
--     took (reviewed_at - review created_at; median, 90th percentile, maximum)?
-- controls: SOC 2 CC6.1, CC6.3; ISO 27001 A.5.3, A.5.15; PCI DSS 7.2
-- severity: info
-- kind: summary
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- hoop: gateway/api/review/review.go (each group's reviewer and reviewed_at are set when that
--     reviewer decides)
-- note: One row per reviewer email, over the review groups that carry a decision. Latency is in
--     minutes. A small circle of reviewers deciding most requests, or approvals within seconds,
--     suggests rubber-stamping; very long latencies suggest reviewers too few for the demand.
WITH decisions AS (
    SELECT g.reviewer_email,
           g.reviewer_name,
           g.group_name,
           g.status,
           coalesce(g.forced_review, false) AS forced_review,
           g.session_id,
           epoch(g.reviewed_at - r.created_at) / 60.0 AS latency_minutes
    FROM review_groups AS g
    JOIN reviews AS r ON r.review_id = g.review_id
    WHERE g.reviewer_email IS NOT NULL
      AND in_period(g.start_day, $start, $end)
)
SELECT
    d.reviewer_email,
    max(d.reviewer_name) AS reviewer_name,
    string_agg(DISTINCT d.group_name, ', ' ORDER BY d.group_name) AS groups,
    count(*) AS decisions,
    count(*) FILTER (WHERE d.status = 'APPROVED') AS approved,
    count(*) FILTER (WHERE d.status = 'REJECTED') AS rejected,
    count(*) FILTER (WHERE d.status = 'REVOKED') AS revoked,
    count(*) FILTER (WHERE d.forced_review AND d.status = 'APPROVED') AS forced,
    count(DISTINCT d.session_id) AS sessions,
    round(quantile_cont(d.latency_minutes, 0.5)
        FILTER (WHERE d.status = 'APPROVED'), 1) AS approval_p50_minutes,
    round(quantile_cont(d.latency_minutes, 0.9)
        FILTER (WHERE d.status = 'APPROVED'), 1) AS approval_p90_minutes,
    round(max(d.latency_minutes) FILTER (WHERE d.status = 'APPROVED'), 1) AS approval_max_minutes
FROM decisions AS d
GROUP BY d.reviewer_email
ORDER BY decisions DESC, d.reviewer_email
