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
-- hoop: gateway/api/session/run-exec.go (canExecReviewedSession checks the time window of the
--     session's own review when a reviewed execution runs)
-- note: hoop gives the window as UTC times of day. The window includes its start and excludes
--     its end (09:00-18:00 allows 09:00:00 up to 17:59:59.999). A window whose start is later
--     than its end crosses midnight (22:00-06:00). Equal start and end allow the whole day.
--     Both the start and every event count: a session opened inside the window can still be
--     used after it closes. Only a session's own review is checked, as hoop does: a session a
--     JIT grant let in is not held to a window by the gateway and is not reported here.
WITH windowed AS MATERIALIZED (
    -- Approved sessions of the period whose review sets a time window, on narrow rows. A session
    -- row carries its review, its tags and the first and last event_time of its stream.
    SELECT s.session_id, s.start_day, s.start_date, s.user_email, s.connection,
           s.connection_tag_map[$env_tag] AS environment, s.review_id, s.approved_by,
           s.first_event_time, s.last_event_time, s.timed_event_count,
           s.review.status AS review_status,
           s.review.time_window_start AS time_window_start,
           s.review.time_window_end AS time_window_end,
           -- A TIMESTAMPTZ has no TIME cast; convert to UTC wall-clock first.
           CAST(timezone('UTC', s.start_date) AS TIME) AS start_time_utc,
           CAST(timezone('UTC', s.first_event_time) AS TIME) AS first_event_time_utc
    FROM sessions AS s
    WHERE in_period(s.start_day, $start, $end)
      AND s.review.time_window_start IS NOT NULL
      AND s.review.time_window_end IS NOT NULL
      AND s.review.status IN ('APPROVED', 'PROCESSING', 'EXECUTED', 'REVOKED')
),
classified AS MATERIALIZED (
    SELECT w.*,
           NOT CASE
                WHEN w.time_window_start = w.time_window_end THEN true
                WHEN w.time_window_start < w.time_window_end
                    THEN w.start_time_utc >= w.time_window_start
                         AND w.start_time_utc < w.time_window_end
                ELSE w.start_time_utc >= w.time_window_start
                     OR w.start_time_utc < w.time_window_end
               END AS started_outside,
           -- The events need no reading when the session's first and last event_time lie on the
           -- same side of every window edge: inside or outside the window is then decided by the
           -- first event. The next edge after the first event is the window's end when that
           -- event is inside and its start when outside (a day is 86,400,000,000 microseconds).
           CASE
               WHEN w.first_event_time IS NULL THEN 'none'
               WHEN w.time_window_start = w.time_window_end THEN 'none'
               WHEN epoch_us(w.time_window_start) >= 86400000000
                    OR epoch_us(w.time_window_end) >= 86400000000 THEN 'read'
               WHEN CASE
                        WHEN w.time_window_start < w.time_window_end
                            THEN w.first_event_time_utc >= w.time_window_start
                                 AND w.first_event_time_utc < w.time_window_end
                        ELSE w.first_event_time_utc >= w.time_window_start
                             OR w.first_event_time_utc < w.time_window_end
                    END
                   THEN CASE
                            WHEN epoch_us(w.last_event_time) - epoch_us(w.first_event_time)
                                 < ((epoch_us(w.time_window_end) - epoch_us(w.first_event_time_utc))
                                    % 86400000000 + 86400000000) % 86400000000
                            THEN 'none' ELSE 'read'
                        END
               ELSE CASE
                        WHEN epoch_us(w.last_event_time) - epoch_us(w.first_event_time)
                             < ((epoch_us(w.time_window_start) - epoch_us(w.first_event_time_utc))
                                % 86400000000 + 86400000000) % 86400000000
                        THEN 'all' ELSE 'read'
                    END
           END AS events_outside
    FROM windowed AS w
),
read_events AS MATERIALIZED (
    -- The events of the sessions that straddle a window edge (start_day is every table's
    -- partition).
    SELECT e.session_id,
           count(*) AS events_outside_window,
           min(e.event_time) AS first_event_outside_window
    FROM session_events AS e
    JOIN classified AS w
        ON w.session_id = e.session_id AND w.start_day = e.start_day AND w.events_outside = 'read'
    WHERE in_period(e.start_day, $start, $end)
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
           CASE w.events_outside
               WHEN 'all' THEN w.timed_event_count
               ELSE coalesce(o.events_outside_window, 0)
           END AS events_outside_window,
           CASE w.events_outside
               WHEN 'all' THEN w.first_event_time
               ELSE o.first_event_outside_window
           END AS first_event_outside_window
    FROM classified AS w
    LEFT JOIN read_events AS o ON o.session_id = w.session_id
    WHERE w.started_outside OR w.events_outside = 'all' OR o.session_id IS NOT NULL
)
SELECT
    unnest(finding_evidence(w)),
    w.time_window_start,
    w.time_window_end,
    w.start_time_utc,
    w.started_outside,
    w.events_outside_window,
    w.first_event_outside_window
FROM flagged AS w
ORDER BY w.start_date, w.session_id
