-- Shared by both flavors: daily availability per station, from liveness_changes.
-- Each change opens an interval that lasts until the station's next change (the last one until
-- now()). A station is monitored while online, stale or offline, and online while online or
-- stale (a stale station still answers); a day has a row when the station was monitored in it.
-- Intervals are cut at midnight in Asia/Shanghai, the stations' local time, so `day` is the
-- local calendar date; an interval spanning several days adds to each of them.

CREATE VIEW stationwatch.availability_daily AS
WITH intervals AS (
    SELECT station_id,
           to_liveness AS liveness,
           time AS since,
           coalesce(lead(time) OVER (PARTITION BY station_id ORDER BY time, to_liveness),
                    now()) AS until
    FROM stationwatch.liveness_changes
),
pieces AS (
    SELECT i.station_id,
           i.liveness,
           d.day,
           least(i.until, (d.day + 1)::timestamp AT TIME ZONE 'Asia/Shanghai')
             - greatest(i.since, d.day::timestamp AT TIME ZONE 'Asia/Shanghai') AS span
    FROM intervals AS i
    CROSS JOIN LATERAL (
        SELECT g::date AS day
        FROM generate_series((i.since AT TIME ZONE 'Asia/Shanghai')::date::timestamp,
                             (i.until AT TIME ZONE 'Asia/Shanghai')::date::timestamp,
                             INTERVAL '1 day') AS g
    ) AS d
    WHERE i.until > i.since AND i.liveness IN ('online', 'stale', 'offline')
),
totals AS (
    SELECT day,
           station_id,
           sum(extract(epoch FROM span))::double precision AS monitored_s,
           coalesce(sum(extract(epoch FROM span))
                    FILTER (WHERE liveness IN ('online', 'stale')), 0)::double precision
               AS online_s
    FROM pieces
    WHERE span > INTERVAL '0'
    GROUP BY day, station_id
)
SELECT day, station_id, monitored_s, online_s, online_s / nullif(monitored_s, 0) AS availability
FROM totals;
