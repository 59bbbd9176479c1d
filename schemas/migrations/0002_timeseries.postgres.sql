-- Time series on plain PostgreSQL: ordinary tables. The primary keys (station_id, time, ...)
-- serve per-station panels; the time-only indexes serve range scans over all stations.

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

CREATE INDEX heartbeats_time_idx ON stationwatch.heartbeats (time DESC);
CREATE INDEX occupancy_time_idx ON stationwatch.occupancy (time DESC);
CREATE INDEX status_events_time_idx ON stationwatch.status_events (time DESC);
CREATE INDEX liveness_changes_time_idx ON stationwatch.liveness_changes (time DESC);
