-- Who the sync's token was, and which gateway it read, over the report period: evidence that
-- the data is the organization's complete view (an admin or auditor token), not a user's.
SELECT
    coalesce(principal, '(not recorded)') AS principal,
    api_url,
    count(DISTINCT start_day) AS days,
    min(start_day) AS first_day,
    max(start_day) AS last_day
FROM sync_windows
WHERE start_day BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
GROUP BY ALL
ORDER BY days DESC, principal, api_url
