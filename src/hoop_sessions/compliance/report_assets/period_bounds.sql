-- The first and last UTC start day held by the warehouse: the default report period.
SELECT min(start_day) AS first_day, max(start_day) AS last_day FROM sessions
