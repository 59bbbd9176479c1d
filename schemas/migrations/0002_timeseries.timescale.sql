-- Time series on TimescaleDB: the same tables as hypertables on `time` (create_hypertable
-- adds the time index), compressed after 7 days; raw heartbeats are kept 90 days and
-- occupancy 180 days. Status events and liveness changes are small and kept (availability_daily
-- reads the whole history of liveness_changes).

CREATE TABLE stationwatch.heartbeats (
    time          timestamptz NOT NULL,
    station_id    text NOT NULL,
    seq           bigint,
    received_at   timestamptz NOT NULL,
    device_id     text,
    uptime_s      bigint,
    battery_pct   real,
    on_mains      boolean,
    temperature_c real,
    firmware      text,
    -- the station's heartbeat_interval_s when the beat arrived: heartbeats_1h.expected needs no join
    interval_s    int,
    PRIMARY KEY (station_id, time)
);

CREATE TABLE stationwatch.occupancy (
    time        timestamptz NOT NULL,
    station_id  text NOT NULL,
    occupants   int NOT NULL,
    capacity    int,
    source      text,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (station_id, time)
);

CREATE TABLE stationwatch.status_events (
    time        timestamptz NOT NULL,
    station_id  text NOT NULL,
    state       text NOT NULL,
    reason      text,
    actor       text,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (station_id, time, state)
);

CREATE TABLE stationwatch.liveness_changes (
    time          timestamptz NOT NULL,
    station_id    text NOT NULL,
    from_liveness text NOT NULL,
    to_liveness   text NOT NULL,
    PRIMARY KEY (station_id, time, to_liveness)
);

SELECT create_hypertable('stationwatch.heartbeats', 'time',
    chunk_time_interval => INTERVAL '1 day', if_not_exists => true, migrate_data => true);
SELECT create_hypertable('stationwatch.occupancy', 'time',
    chunk_time_interval => INTERVAL '1 day', if_not_exists => true, migrate_data => true);
SELECT create_hypertable('stationwatch.status_events', 'time',
    chunk_time_interval => INTERVAL '7 days', if_not_exists => true, migrate_data => true);
SELECT create_hypertable('stationwatch.liveness_changes', 'time',
    chunk_time_interval => INTERVAL '7 days', if_not_exists => true, migrate_data => true);

ALTER TABLE stationwatch.heartbeats SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'station_id', timescaledb.compress_orderby = 'time DESC');
ALTER TABLE stationwatch.occupancy SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'station_id', timescaledb.compress_orderby = 'time DESC');
ALTER TABLE stationwatch.status_events SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'station_id',
    timescaledb.compress_orderby = 'time DESC, state');
ALTER TABLE stationwatch.liveness_changes SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'station_id',
    timescaledb.compress_orderby = 'time DESC, to_liveness');

SELECT add_compression_policy('stationwatch.heartbeats', INTERVAL '7 days', if_not_exists => true);
SELECT add_compression_policy('stationwatch.occupancy', INTERVAL '7 days', if_not_exists => true);
SELECT add_compression_policy('stationwatch.status_events', INTERVAL '7 days',
    if_not_exists => true);
SELECT add_compression_policy('stationwatch.liveness_changes', INTERVAL '7 days',
    if_not_exists => true);

SELECT add_retention_policy('stationwatch.heartbeats', INTERVAL '90 days', if_not_exists => true);
SELECT add_retention_policy('stationwatch.occupancy', INTERVAL '180 days', if_not_exists => true);
