-- id: guardrail_match
-- title: Guardrail rule matches
-- question: Which sessions matched one or more guardrail rules (deny-word lists or patterns)?
-- controls: SOC 2 CC6.1, CC7.2; ISO 27001 A.8.12, A.8.16; PCI DSS 10.2, 10.4.1
-- severity: medium
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- hoop: gateway/models/session.go (guardrails_info is stored on the session row, in list and get
--     alike)
-- note: guardrails_info is hoop's list of matches; null, JSON null and [] all mean none.
WITH hit AS MATERIALIZED (
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection,
           s.connection_tag_map[$env_tag] AS environment, s.review_id, s.review_status,
           s.guardrails_info
    FROM sessions AS s
    WHERE in_period(s.start_day, $start, $end)
      AND s.guardrails_info IS NOT NULL  -- cheap first: json_type parses the document
      AND json_type(s.guardrails_info) = 'ARRAY'
      AND json_array_length(s.guardrails_info) > 0
)
SELECT
    unnest(finding_session(s)),
    json_array_length(s.guardrails_info) AS matches,
    array_to_string(list_sort(list_distinct(
        json_extract_string(s.guardrails_info, '$[*].rule_name'))), ', ') AS guardrail_rules,
    array_to_string(list_sort(list_distinct(
        json_extract_string(s.guardrails_info, '$[*].direction'))), ', ') AS directions,
    array_to_string(list_sort(list_distinct(
        json_extract_string(s.guardrails_info, '$[*].matched_words[*]'))), ', ') AS matched_words
FROM hit AS s
ORDER BY s.start_date, s.session_id
