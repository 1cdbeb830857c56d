-- id: masking_or_recording_gap
-- title: Data-masking errors and recording gaps
-- question: Which sessions had data-masking errors, a recording truncated at the gateway's
--     110 MiB limit, an event stream the gateway could not decode, or a recording cut short by
--     a gateway restart (done with event_size 0 but a stream)?
-- controls: SOC 2 CC6.7, CC7.2; ISO 27001 A.8.11, A.8.15; PCI DSS 3.4, 10.2, 10.3
-- severity: medium
-- kind: finding
-- param: start date = | First UTC start day to include; empty means no lower bound.
-- param: end date = | Last UTC start day to include (inclusive); empty means no upper bound.
-- param: env_tag text = environment | Connection tag key that holds the environment name.
-- hoop: gateway/transport/plugins/audit/wal.go (the stream is flushed while the session runs and
--     cut at 110 MiB, metrics.truncated; event_size is written when the session closes, so a
--     gateway restart leaves event_size 0 beside a partial stream)
-- note: A masking error may have let sensitive data through unmasked; a truncated or
--     undecodable stream is a hole in the audit trail. A stream this sync was not allowed to
--     read (stream_status = forbidden) is a sync permission problem, not a gateway one, and is
--     not reported here. A session done with event_size 0 and a non-empty stream was closed by a
--     gateway restart: the events after the last flush (about 50 s) are lost.
SELECT
    -- The session row carries the evidence (its tags): one scan, no join.
    unnest(finding_session(s)),
    s.masking_error_count,
    s.redacted_count,
    coalesce(s.stream_truncated, false) AS stream_truncated,
    s.stream_status,
    s.event_size,
    s.status = 'done' AND s.event_size = 0 AND s.event_count > 0 AS cut_by_restart
-- The environment is the connection's tag $env_tag (the row carries its tags).
FROM (SELECT *, connection_tag_map[$env_tag] AS environment FROM sessions) AS s
WHERE in_period(s.start_day, $start, $end)
  AND (coalesce(s.masking_error_count, 0) > 0
       OR coalesce(s.stream_truncated, false)
       OR s.stream_status = 'unreadable'
       OR (s.status = 'done' AND s.event_size = 0 AND s.event_count > 0))
ORDER BY s.start_date, s.session_id
