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
WITH scope AS (
    SELECT s.*, env.tag_value AS environment
    FROM sessions AS s
    LEFT JOIN connection_tags AS env
        ON env.session_id = s.session_id AND env.tag_key = $env_tag
    WHERE s.start_day BETWEEN coalesce(CAST($start AS DATE), DATE '0001-01-01')
                          AND coalesce(CAST($end AS DATE), DATE '9999-12-31')
),
approvers AS (
    SELECT review_id,
           string_agg(DISTINCT reviewer_email, ', ' ORDER BY reviewer_email) AS approvers
    FROM review_groups
    WHERE status = 'APPROVED'
    GROUP BY review_id
),
windowed AS (
    SELECT s.*,
           r.status AS review_status_now,
           r.time_window_start,
           r.time_window_end,
           -- A TIMESTAMPTZ has no TIME cast; convert to UTC wall-clock first.
           CAST(timezone('UTC', s.start_date) AS TIME) AS start_time_utc
    FROM scope AS s
    JOIN reviews AS r ON r.review_id = s.review_id
    WHERE r.time_window_start IS NOT NULL
      AND r.time_window_end IS NOT NULL
      AND r.status IN ('APPROVED', 'PROCESSING', 'EXECUTED', 'REVOKED')
),
moments AS (
    SELECT w.session_id, w.start_time_utc AS at_utc, 'start' AS what, w.start_date AS moment
    FROM windowed AS w
    UNION ALL
    SELECT e.session_id, CAST(timezone('UTC', e.event_time) AS TIME), 'event', e.event_time
    FROM session_events AS e
    JOIN windowed AS w ON w.session_id = e.session_id
),
outside AS (
    SELECT m.session_id,
           bool_or(m.what = 'start') AS started_outside,
           count(*) FILTER (WHERE m.what = 'event') AS events_outside_window,
           min(m.moment) FILTER (WHERE m.what = 'event') AS first_event_outside_window
    FROM moments AS m
    JOIN windowed AS w ON w.session_id = m.session_id
    WHERE NOT CASE
            WHEN w.time_window_start = w.time_window_end THEN true
            WHEN w.time_window_start < w.time_window_end
                THEN m.at_utc >= w.time_window_start AND m.at_utc < w.time_window_end
            ELSE m.at_utc >= w.time_window_start OR m.at_utc < w.time_window_end
          END
    GROUP BY m.session_id
)
SELECT
    w.session_id,
    w.start_day,
    w.start_date,
    w.user_email,
    w.connection,
    w.environment,
    w.review_id,
    w.review_status_now AS review_status,
    a.approvers,
    w.time_window_start,
    w.time_window_end,
    w.start_time_utc,
    o.started_outside,
    o.events_outside_window,
    o.first_event_outside_window
FROM outside AS o
JOIN windowed AS w ON w.session_id = o.session_id
LEFT JOIN approvers AS a ON a.review_id = w.review_id
ORDER BY w.start_date, w.session_id
