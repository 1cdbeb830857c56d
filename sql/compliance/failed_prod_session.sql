-- id: failed_prod_session
-- title: Failed sessions on production
-- question: Which production sessions ended with a non-zero exit code (254 = gateway error)?
-- controls: SOC 2 CC7.2, CC7.3; ISO 27001 A.8.15, A.8.16; PCI DSS 10.2.1, 10.4.1
-- severity: low
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- param: prod_env text = prod | Value of that tag that marks production.
-- hoop: gateway/models/session.go (SetSessionCredentialsRevokedAt: the credential sweeper ends a
--     session as done with an end date and leaves exit_code null)
-- note: Repeated failures on production are how probing and broken changes show up. A null
--     exit code is not a failure: the session never ran, still runs, or was ended by hoop when
--     its connection credentials expired or were revoked (done, end_date set, exit_code null,
--     metadata.credentials_revoked_at; gateway 1.140.3 and later).
SELECT
    -- The session row carries the evidence (its tags, its review's approvers): one scan, no join.
    unnest(finding_evidence(s)),
    s.exit_code,
    s.exit_code = 254 AS gateway_error,
    s.verb,
    s.connection_subtype
-- The environment is the connection's tag $env_tag (the row carries its tags).
FROM (SELECT *, connection_tag_map[$env_tag] AS environment FROM sessions) AS s
WHERE in_period(s.start_day, $start, $end)
  AND s.exit_code IS NOT NULL
  AND s.exit_code <> 0
  AND s.environment = $prod_env
ORDER BY s.start_date, s.session_id
