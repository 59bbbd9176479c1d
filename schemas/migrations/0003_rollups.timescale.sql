-- Rollups on TimescaleDB: continuous aggregates with real-time aggregation (recent buckets are
-- computed from raw rows), refreshed by policies. WITH NO DATA keeps this inside a transaction;
-- the refresh policies fill them in.

CREATE MATERIALIZED VIEW stationwatch.occupancy_5m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '5 minutes', time) AS bucket,
       station_id,
       avg(occupants)::double precision AS avg_occupants,
       max(occupants) AS max_occupants,
       max(capacity) AS capacity
FROM stationwatch.occupancy
GROUP BY bucket, station_id
WITH NO DATA;

CREATE MATERIALIZED VIEW stationwatch.heartbeats_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket,
       station_id,
       count(*) AS heartbeats,
       3600.0::double precision / nullif(max(interval_s), 0) AS expected
FROM stationwatch.heartbeats
GROUP BY bucket, station_id
WITH NO DATA;

SELECT add_continuous_aggregate_policy('stationwatch.occupancy_5m',
    start_offset => INTERVAL '2 days', end_offset => INTERVAL '5 minutes',
    schedule_interval => INTERVAL '5 minutes', if_not_exists => true);
SELECT add_continuous_aggregate_policy('stationwatch.heartbeats_1h',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '30 minutes', if_not_exists => true);
