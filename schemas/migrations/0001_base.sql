-- Shared by both flavors: the registry, alert episodes and the live state.
-- Runs inside one transaction opened by stationwatch.db.migrate; no BEGIN/COMMIT here.

CREATE TABLE stationwatch.stations (
    station_id           text PRIMARY KEY,
    name                 text NOT NULL,
    district             text NOT NULL DEFAULT '',
    street               text NOT NULL DEFAULT '',
    category             text NOT NULL,
    host                 text NOT NULL,
    lat                  double precision NOT NULL,
    lon                  double precision NOT NULL,
    services             text[] NOT NULL DEFAULT '{}',
    capacity             int,
    opening_hours        jsonb NOT NULL,
    heartbeat_interval_s int,
    contact_phone        text,
    lifecycle            text NOT NULL,
    updated_at           timestamptz NOT NULL,
    profile              jsonb NOT NULL,
    ingested_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX stations_street_idx ON stationwatch.stations (street);
CREATE INDEX stations_category_idx ON stationwatch.stations (category);

CREATE TABLE stationwatch.alerts (
    alert_id             text PRIMARY KEY,
    fingerprint          text NOT NULL,
    station_id           text NOT NULL,
    kind                 text NOT NULL,
    severity             text NOT NULL,
    starts_at            timestamptz NOT NULL,
    ends_at              timestamptz,
    detected_at          timestamptz NOT NULL,
    resolved_detected_at timestamptz,
    last_heartbeat_at    timestamptz,
    labels               jsonb NOT NULL DEFAULT '{}',
    summary              text NOT NULL DEFAULT ''
);

CREATE INDEX alerts_station_starts_idx ON stationwatch.alerts (station_id, starts_at DESC);
CREATE INDEX alerts_starts_idx ON stationwatch.alerts (starts_at DESC);
-- Open episodes: what the "alerts firing now" panels read.
CREATE INDEX alerts_open_idx ON stationwatch.alerts (station_id, kind) WHERE ends_at IS NULL;

CREATE TABLE stationwatch.station_current (
    station_id        text PRIMARY KEY,
    name              text,
    category          text,
    street            text,
    district          text,
    lat               double precision,
    lon               double precision,
    services          text[],
    lifecycle         text NOT NULL,
    liveness          text NOT NULL,
    liveness_since    timestamptz,
    last_heartbeat_at timestamptz,
    open_state        text NOT NULL,
    open_state_since  timestamptz,
    scheduled_open    boolean,
    occupants         int,
    capacity          int,
    occupancy_at      timestamptz,
    updated_at        timestamptz NOT NULL
);

CREATE INDEX station_current_liveness_idx ON stationwatch.station_current (liveness);
