-- Sessions per UTC start day and environment (the value of the $env_tag connection tag).
SELECT
    s.start_day,
    coalesce(env.tag_value, '(untagged)') AS environment,
    count(*) AS sessions
FROM sessions AS s
LEFT JOIN connection_tags AS env
    ON env.session_id = s.session_id AND env.tag_key = $env_tag
WHERE s.start_day BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
GROUP BY ALL
ORDER BY s.start_day, environment
