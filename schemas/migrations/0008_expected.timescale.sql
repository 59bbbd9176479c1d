-- When each station was expected alive, and availability_daily computed from it: TimescaleDB.
-- The same table as the plain-PostgreSQL twin (0008_expected.postgres.sql), as a hypertable on
-- `time` (7-day chunks, like liveness_changes), compressed after 7 days and kept (availability
-- reads the whole history); the same view (a continuous aggregate cannot hold the window
-- functions it needs).
--
-- expected_changes: one row each time a station became expected alive (`expected`) or stopped
--   being so (lifecycle active, a device, scheduled open now by its hours, public holidays and
--   make-up working days). Written by the worker: a schedule opening or closing is dated at
--   the schedule's own boundary, a registry change (lifecycle, device, hours, removal) or the
--   first sight of a station when it was processed. A station's changes are strictly
--   increasing in time, so (station_id, time) is the key: a redelivery writes one row.
--   `reason`: schedule | lifecycle | registry | first_seen.
--
-- availability_daily replaces 0004's view (same columns and types): per station and local day
--   (Asia/Shanghai), `monitored_s` = seconds the station was expected alive, `online_s` = those
--   of them it was `online` by liveness_changes (strictly: `stale` is a late heartbeat, and a
--   station never heard from is not online). Both change streams are merged into one timeline
--   per station; each event opens an interval that lasts until the station's next event (the
--   last one until now()), carrying the latest expected verdict and liveness; intervals are cut
--   at local midnight. Before a station's first expected_changes row it is not expected.
--   A day has a row when the station was expected alive in it.

CREATE TABLE stationwatch.expected_changes (
    time       timestamptz NOT NULL,
    station_id text NOT NULL,
    expected   boolean NOT NULL,
    reason     text NOT NULL,
    PRIMARY KEY (station_id, time)
);

SELECT create_hypertable('stationwatch.expected_changes', 'time',
    chunk_time_interval => INTERVAL '7 days', if_not_exists => true, migrate_data => true);

ALTER TABLE stationwatch.expected_changes SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'station_id', timescaledb.compress_orderby = 'time DESC');

SELECT add_compression_policy('stationwatch.expected_changes', INTERVAL '7 days',
    if_not_exists => true);

CREATE OR REPLACE VIEW stationwatch.availability_daily AS
WITH events AS (
    SELECT station_id, time, 0 AS kind, expected, NULL::text AS liveness
    FROM stationwatch.expected_changes
    UNION ALL
    SELECT station_id, time, 1 AS kind, NULL::boolean AS expected, to_liveness AS liveness
    FROM stationwatch.liveness_changes
),
numbered AS (
    SELECT station_id,
           time AS since,
           coalesce(lead(time) OVER timeline, now()) AS until,
           count(expected) OVER timeline AS expected_group,
           count(liveness) OVER timeline AS liveness_group,
           expected,
           liveness
    FROM events
    WINDOW timeline AS (PARTITION BY station_id ORDER BY time, kind, liveness
                        ROWS UNBOUNDED PRECEDING)
),
intervals AS (
    -- each group holds one non-null value, its first row's: carried forward to the others
    SELECT station_id,
           since,
           until,
           coalesce(bool_or(expected) OVER (PARTITION BY station_id, expected_group), false)
               AS expected,
           max(liveness) OVER (PARTITION BY station_id, liveness_group) AS liveness
    FROM numbered
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
    WHERE i.expected AND i.until > i.since
),
totals AS (
    SELECT day,
           station_id,
           sum(extract(epoch FROM span))::double precision AS monitored_s,
           coalesce(sum(extract(epoch FROM span)) FILTER (WHERE liveness = 'online'), 0)
               ::double precision AS online_s
    FROM pieces
    WHERE span > INTERVAL '0'
    GROUP BY day, station_id
)
SELECT day, station_id, monitored_s, online_s, online_s / nullif(monitored_s, 0) AS availability
FROM totals;
