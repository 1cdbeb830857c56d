-- Coverage of the report period, one row per UTC day: is there a sync ledger for the day, do
-- its counts reconcile (listed = loaded + rejected), and do the loaded rows match the ledger?
WITH days AS (
    SELECT CAST(d AS DATE) AS day
    FROM generate_series(CAST($start AS DATE), CAST($end AS DATE), INTERVAL 1 DAY) AS t(d)
),
ledger AS (
    SELECT start_day,
           count(*) AS windows,
           sum(sessions_listed) AS listed,
           sum(sessions_loaded) AS loaded,
           sum(sessions_rejected) AS rejected,
           max(finished_at) AS synced_at
    FROM sync_windows
    WHERE start_day BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
    GROUP BY start_day
),
loaded AS (
    SELECT start_day,
           count(*) AS sessions,
           count(*) FILTER (WHERE NOT coalesce(is_final, false)) AS not_final
    FROM sessions
    WHERE start_day BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
    GROUP BY start_day
),
rejected AS (
    SELECT start_day, count(*) AS rejects
    FROM rejects
    WHERE start_day BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
    GROUP BY start_day
)
SELECT
    d.day,
    l.windows IS NOT NULL AS synced,
    coalesce(l.listed, 0) AS sessions_listed,
    coalesce(l.loaded, 0) AS sessions_loaded,
    coalesce(l.rejected, 0) AS sessions_rejected,
    coalesce(s.sessions, 0) AS sessions_in_warehouse,
    coalesce(s.not_final, 0) AS sessions_not_final,
    coalesce(r.rejects, 0) AS reject_rows,
    l.synced_at,
    l.windows IS NOT NULL
        AND l.listed = l.loaded + l.rejected
        AND l.loaded = coalesce(s.sessions, 0) AS reconciled
FROM days AS d
LEFT JOIN ledger AS l ON l.start_day = d.day
LEFT JOIN loaded AS s ON s.start_day = d.day
LEFT JOIN rejected AS r ON r.start_day = d.day
ORDER BY d.day
