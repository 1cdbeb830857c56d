-- Approval latency (a group's reviewed_at - the review's created_at) in buckets, with the
-- percentiles of all approvals in the period repeated on each row.
WITH latency AS (
    SELECT epoch(g.reviewed_at - r.created_at) / 60.0 AS minutes
    FROM review_groups AS g
    JOIN reviews AS r ON r.review_id = g.review_id
    WHERE g.status = 'APPROVED'
      AND g.reviewed_at IS NOT NULL
      AND r.created_at IS NOT NULL
      AND g.start_day BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
),
stats AS (
    SELECT count(*) AS approvals,
           quantile_cont(minutes, 0.5) AS p50,
           quantile_cont(minutes, 0.9) AS p90,
           quantile_cont(minutes, 0.99) AS p99,
           max(minutes) AS max_minutes
    FROM latency
),
buckets(ord, label, low, high) AS (
    VALUES (1, '< 1 min', NULL, 1.0),
           (2, '1-5 min', 1.0, 5.0),
           (3, '5-15 min', 5.0, 15.0),
           (4, '15-60 min', 15.0, 60.0),
           (5, '1-4 h', 60.0, 240.0),
           (6, '4-24 h', 240.0, 1440.0),
           (7, '> 1 day', 1440.0, NULL)
)
SELECT
    b.label,
    count(l.minutes) AS bucket_approvals,
    any_value(s.approvals) AS approvals,
    any_value(s.p50) AS p50,
    any_value(s.p90) AS p90,
    any_value(s.p99) AS p99,
    any_value(s.max_minutes) AS max_minutes
FROM buckets AS b
LEFT JOIN latency AS l
    ON (b.low IS NULL OR l.minutes >= b.low) AND (b.high IS NULL OR l.minutes < b.high)
CROSS JOIN stats AS s
GROUP BY b.ord, b.label
ORDER BY b.ord
