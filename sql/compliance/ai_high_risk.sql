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
-- hoop: gateway/models/session.go (ai_analysis is stored on the session row and returned by a get)
-- note: A blocked execution is still evidence that someone tried; an allowed one needs a look at
--     what was typed (session_events). hoop only analyses some sessions; absent means not analysed.
WITH hit AS MATERIALIZED (
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection,
           s.connection_tag_map[$env_tag] AS environment, s.review_id, s.review_status,
           s.approved_by, s.ai_analysis, s.exit_code
    FROM sessions AS s
    WHERE in_period(s.start_day, $start, $end)
      AND s.ai_analysis IS NOT NULL  -- cheap first: json_type parses the document
      AND json_type(s.ai_analysis) = 'OBJECT'
      AND lower(s.ai_analysis ->> 'risk_level') = lower($risk_level)
)
SELECT
    unnest(finding_evidence(s)),
    s.ai_analysis ->> 'risk_level' AS risk_level,
    s.ai_analysis ->> 'action' AS action,
    s.ai_analysis ->> 'title' AS title,
    s.ai_analysis ->> 'explanation' AS explanation,
    s.exit_code
FROM hit AS s
ORDER BY s.start_date, s.session_id
