-- Shared by both flavors: availability for a range of days, reading only what it needs.
--
-- availability_daily (0008) replays every station's whole history on each read: a year of a
-- district takes seconds, and a dashboard asks for it in every panel. availability_between
-- (first_day, last_day) answers the same rows for those local days (Asia/Shanghai) by the same
-- rules: each station starts from its last expected and liveness changes at or before the
-- range's first midnight (one index lookup each) and follows the changes inside the range.

CREATE FUNCTION stationwatch.availability_between(first_day date, last_day date)
RETURNS TABLE (day date, station_id text, monitored_s double precision,
               online_s double precision, availability double precision)
LANGUAGE sql STABLE
BEGIN ATOMIC
WITH RECURSIVE bounds AS (
    SELECT first_day::timestamp AT TIME ZONE 'Asia/Shanghai' AS lo,
           (last_day + 1)::timestamp AT TIME ZONE 'Asia/Shanghai' AS hi
),
ids AS (
    -- every station with an expected change, one index probe each (a loose index scan)
    (SELECT x.station_id FROM stationwatch.expected_changes AS x ORDER BY x.station_id LIMIT 1)
    UNION ALL
    SELECT (SELECT x.station_id
            FROM stationwatch.expected_changes AS x
            WHERE x.station_id > ids.station_id
            ORDER BY x.station_id
            LIMIT 1)
    FROM ids
    WHERE ids.station_id IS NOT NULL
),
events AS (
    -- where each station stands at the first midnight
    SELECT i.station_id, b.lo AS time, 0 AS kind, e.expected, NULL::text AS liveness
    FROM ids AS i
    CROSS JOIN bounds AS b
    CROSS JOIN LATERAL (
        SELECT x.expected
        FROM stationwatch.expected_changes AS x
        WHERE x.station_id = i.station_id AND x.time <= b.lo
        ORDER BY x.time DESC
        LIMIT 1
    ) AS e
    UNION ALL
    SELECT i.station_id, b.lo AS time, 1 AS kind, NULL::boolean AS expected, l.to_liveness
    FROM ids AS i
    CROSS JOIN bounds AS b
    CROSS JOIN LATERAL (
        SELECT x.to_liveness
        FROM stationwatch.liveness_changes AS x
        WHERE x.station_id = i.station_id AND x.time <= b.lo
        ORDER BY x.time DESC, x.to_liveness DESC
        LIMIT 1
    ) AS l
    -- and what changes inside the range
    UNION ALL
    SELECT x.station_id, x.time, 0 AS kind, x.expected, NULL::text AS liveness
    FROM stationwatch.expected_changes AS x, bounds AS b
    WHERE x.time > b.lo AND x.time < b.hi
    UNION ALL
    SELECT x.station_id, x.time, 1 AS kind, NULL::boolean AS expected, x.to_liveness
    FROM stationwatch.liveness_changes AS x, bounds AS b
    WHERE x.time > b.lo AND x.time < b.hi
),
numbered AS (
    SELECT ev.station_id,
           ev.time AS since,
           coalesce(lead(ev.time) OVER timeline, least(now(), (SELECT hi FROM bounds))) AS until,
           count(ev.expected) OVER timeline AS expected_group,
           count(ev.liveness) OVER timeline AS liveness_group,
           ev.expected,
           ev.liveness
    FROM events AS ev
    WINDOW timeline AS (PARTITION BY ev.station_id ORDER BY ev.time, ev.kind, ev.liveness
                        ROWS UNBOUNDED PRECEDING)
),
intervals AS (
    SELECT n.station_id,
           n.since,
           n.until,
           coalesce(bool_or(n.expected) OVER (PARTITION BY n.station_id, n.expected_group),
                    false) AS expected,
           max(n.liveness) OVER (PARTITION BY n.station_id, n.liveness_group) AS liveness
    FROM numbered AS n
),
pieces AS (
    SELECT i.station_id,
           d.day,
           i.liveness,
           least(i.until, (d.day + 1)::timestamp AT TIME ZONE 'Asia/Shanghai')
             - greatest(i.since, d.day::timestamp AT TIME ZONE 'Asia/Shanghai') AS span
    FROM intervals AS i
    CROSS JOIN LATERAL (
        SELECT g::date AS day
        FROM generate_series((i.since AT TIME ZONE 'Asia/Shanghai')::date::timestamp,
                             (i.until AT TIME ZONE 'Asia/Shanghai')::date::timestamp,
                             INTERVAL '1 day') AS g
    ) AS d
    WHERE i.expected AND i.until > i.since AND d.day BETWEEN first_day AND last_day
),
totals AS (
    SELECT p.day,
           p.station_id,
           sum(extract(epoch FROM p.span))::double precision AS monitored_s,
           coalesce(sum(extract(epoch FROM p.span)) FILTER (WHERE p.liveness = 'online'), 0)
               ::double precision AS online_s
    FROM pieces AS p
    WHERE p.span > INTERVAL '0'
    GROUP BY p.day, p.station_id
)
SELECT t.day, t.station_id, t.monitored_s, t.online_s,
       t.online_s / nullif(t.monitored_s, 0) AS availability
FROM totals AS t;
END;
