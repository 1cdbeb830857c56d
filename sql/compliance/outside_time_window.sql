-- id: outside_time_window
-- title: Access outside the approved time window
-- question: Which approved sessions started, or recorded events, outside the UTC time window
--     their review allowed?
-- controls: SOC 2 CC6.1, CC6.2; ISO 27001 A.5.15, A.8.2; PCI DSS 7.2
-- severity: medium
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- note: hoop gives the window as UTC times of day. The window includes its start and excludes
--     its end (09:00-18:00 allows 09:00:00 up to 17:59:59.999). A window whose start is later
--     than its end crosses midnight (22:00-06:00). Equal start and end allow the whole day.
--     Both the start and every event count: a session opened inside the window can still be
--     used after it closes.
WITH windowed AS MATERIALIZED (
    -- Approved sessions of the period whose review sets a time window, on narrow rows.
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection, s.review_id,
           r.status AS review_status_now,
           r.time_window_start,
           r.time_window_end,
           -- A TIMESTAMPTZ has no TIME cast; convert to UTC wall-clock first.
           CAST(timezone('UTC', s.start_date) AS TIME) AS start_time_utc
    FROM sessions AS s
    JOIN reviews AS r ON r.review_id = s.review_id
    WHERE s.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
      AND r.time_window_start IS NOT NULL
      AND r.time_window_end IS NOT NULL
      AND r.status IN ('APPROVED', 'PROCESSING', 'EXECUTED', 'REVOKED')
),
start_outside AS MATERIALIZED (
    SELECT w.*,
           NOT CASE
                WHEN w.time_window_start = w.time_window_end THEN true
                WHEN w.time_window_start < w.time_window_end
                    THEN w.start_time_utc >= w.time_window_start
                         AND w.start_time_utc < w.time_window_end
                ELSE w.start_time_utc >= w.time_window_start
                     OR w.start_time_utc < w.time_window_end
               END AS started_outside
    FROM windowed AS w
),
events_outside AS MATERIALIZED (
    -- One pass over the events of the period (start_day is every table's partition).
    SELECT e.session_id,
           count(*) AS events_outside_window,
           min(e.event_time) AS first_event_outside_window
    FROM session_events AS e
    JOIN windowed AS w ON w.session_id = e.session_id
    WHERE e.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
      AND NOT CASE
            WHEN w.time_window_start = w.time_window_end THEN true
            WHEN w.time_window_start < w.time_window_end
                THEN CAST(timezone('UTC', e.event_time) AS TIME) >= w.time_window_start
                     AND CAST(timezone('UTC', e.event_time) AS TIME) < w.time_window_end
            ELSE CAST(timezone('UTC', e.event_time) AS TIME) >= w.time_window_start
                 OR CAST(timezone('UTC', e.event_time) AS TIME) < w.time_window_end
          END
    GROUP BY e.session_id
),
flagged AS MATERIALIZED (
    SELECT w.*,
           coalesce(o.events_outside_window, 0) AS events_outside_window,
           o.first_event_outside_window
    FROM start_outside AS w
    LEFT JOIN events_outside AS o ON o.session_id = w.session_id
    WHERE w.started_outside OR o.session_id IS NOT NULL
),
env AS (
    SELECT t.session_id, t.tag_value
    FROM connection_tags AS t
    WHERE t.tag_key = $env_tag
      AND t.session_id IN (SELECT session_id FROM flagged)
),
approvers AS (
    SELECT g.review_id,
           string_agg(DISTINCT g.reviewer_email, ', ' ORDER BY g.reviewer_email) AS approvers
    FROM review_groups AS g
    WHERE g.status = 'APPROVED'
      AND g.review_id IN (SELECT review_id FROM flagged)
    GROUP BY g.review_id
)
SELECT
    w.session_id,
    w.start_day,
    w.start_date,
    w.user_email,
    w.connection,
    env.tag_value AS environment,
    w.review_id,
    w.review_status_now AS review_status,
    a.approvers,
    w.time_window_start,
    w.time_window_end,
    w.start_time_utc,
    w.started_outside,
    w.events_outside_window,
    w.first_event_outside_window
FROM flagged AS w
LEFT JOIN env ON env.session_id = w.session_id
LEFT JOIN approvers AS a ON a.review_id = w.review_id
ORDER BY w.start_date, w.session_id
