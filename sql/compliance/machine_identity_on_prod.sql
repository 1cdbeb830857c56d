-- id: machine_identity_on_prod
-- title: Machine identities on production
-- question: Which production sessions were opened by a machine identity rather than a person?
-- controls: SOC 2 CC6.1, CC6.2; ISO 27001 A.5.16, A.8.2, A.8.5; PCI DSS 8.2.2, 8.6
-- severity: medium
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- param: prod_env text = prod | Value of that tag that marks production.
-- hoop: gateway/models/session.go (identity_type and machine_identity_id say who opened the
--     session)
-- note: Machine access to production is often legitimate (automation), but each identity
--     needs an owner and an inventory entry; this list is the input to that review.
SELECT
    -- The session row carries the evidence (its tags, its review's approvers): no join.
    unnest(finding_evidence(s)),
    s.machine_identity_id,
    s.user_id,
    s.verb,
    s.session_batch_id,
    s.correlation_id
-- The environment is the connection's tag $env_tag (the row carries its tags).
FROM (SELECT *, connection_tag_map[$env_tag] AS environment FROM sessions) AS s
WHERE in_period(s.start_day, $start, $end)
  AND s.identity_type = 'machine'
  AND s.environment = $prod_env
ORDER BY s.start_date, s.session_id
