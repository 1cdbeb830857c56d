-- id: ai_high_risk
-- title: Sessions the AI analysis rated high risk
-- question: Which sessions did hoop's AI risk analysis rate at the given risk level (default
--     high), whatever action it took?
-- controls: SOC 2 CC7.2, CC7.3; ISO 27001 A.8.12, A.8.16; PCI DSS 10.4.1
-- severity: medium
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- param: risk_level text = high | ai_analysis.risk_level to report (compared case-insensitively).
-- note: A blocked execution is still evidence that someone tried; an allowed one needs a look at
--     what was typed (session_events). hoop only analyses some sessions; absent means not analysed.
WITH hit AS MATERIALIZED (
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection, s.review_id,
           s.review_status, s.ai_analysis, s.exit_code
    FROM sessions AS s
    WHERE s.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
      AND s.ai_analysis IS NOT NULL  -- cheap first: json_type parses the document
      AND json_type(s.ai_analysis) = 'OBJECT'
      AND lower(s.ai_analysis ->> 'risk_level') = lower($risk_level)
),
env AS (
    SELECT t.session_id, t.tag_value
    FROM connection_tags AS t
    WHERE t.tag_key = $env_tag
      AND t.session_id IN (SELECT session_id FROM hit)
),
approvers AS (
    SELECT g.review_id,
           string_agg(DISTINCT g.reviewer_email, ', ' ORDER BY g.reviewer_email) AS approvers
    FROM review_groups AS g
    WHERE g.status = 'APPROVED'
      AND g.review_id IN (SELECT review_id FROM hit)
    GROUP BY g.review_id
)
SELECT
    s.session_id,
    s.start_day,
    s.start_date,
    s.user_email,
    s.connection,
    env.tag_value AS environment,
    s.review_id,
    s.review_status,
    a.approvers,
    s.ai_analysis ->> 'risk_level' AS risk_level,
    s.ai_analysis ->> 'action' AS action,
    s.ai_analysis ->> 'title' AS title,
    s.ai_analysis ->> 'explanation' AS explanation,
    s.exit_code
FROM hit AS s
LEFT JOIN env ON env.session_id = s.session_id
LEFT JOIN approvers AS a ON a.review_id = s.review_id
ORDER BY s.start_date, s.session_id
