-- Rollups on plain PostgreSQL: views computed on read, same names and columns as the
-- TimescaleDB continuous aggregates. Buckets are aligned to UTC like time_bucket's.

CREATE VIEW stationwatch.occupancy_5m AS
SELECT date_bin(INTERVAL '5 minutes', time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       station_id,
       avg(occupants)::double precision AS avg_occupants,
       max(occupants) AS max_occupants,
       max(capacity) AS capacity
FROM stationwatch.occupancy
GROUP BY 1, 2;

CREATE VIEW stationwatch.heartbeats_1h AS
SELECT date_bin(INTERVAL '1 hour', time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       station_id,
       count(*) AS heartbeats,
       3600.0::double precision / nullif(max(interval_s), 0) AS expected
FROM stationwatch.heartbeats
GROUP BY 1, 2;
