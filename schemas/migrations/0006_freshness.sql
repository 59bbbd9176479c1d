-- Shared by both flavors: live state that degrades on its own when no worker refreshes it.
--
-- The worker writes what it last decided to `station_current_reported`, with `fresh_until`:
-- the moment that liveness stops being true unless the worker says otherwise (an `online`
-- station turns stale STALE_AFTER intervals after its last heartbeat, a `stale` one offline
-- after OFFLINE_AFTER; one more interval of grace lets a running worker always come first).
-- `station_current` reads it against now(): past `fresh_until` the liveness is `unknown`
-- (since `fresh_until`), so a stopped pipeline never shows a green district.
--
-- Each worker reports itself to `pipeline_workers` every few seconds (healthy = consuming,
-- caught up, writing; a worker stopping cleanly reports `stopped`); `pipeline_status` says in
-- one row how old the picture is. Without a
-- report for 15 s, `station_current.scheduled_open` (decided by the worker) is NULL too.

ALTER TABLE stationwatch.station_current RENAME TO station_current_reported;
ALTER INDEX stationwatch.station_current_liveness_idx
    RENAME TO station_current_reported_liveness_idx;
ALTER TABLE stationwatch.station_current_reported ADD COLUMN fresh_until timestamptz;

CREATE TABLE stationwatch.pipeline_workers (
    worker_id   text PRIMARY KEY,      -- the worker's URL (host and web port)
    host        text NOT NULL,
    pid         int NOT NULL,
    started_at  timestamptz NOT NULL,
    seen_at     timestamptz NOT NULL,  -- its last report
    healthy     boolean NOT NULL,      -- consuming, caught up, writing (as its /health)
    healthy_at  timestamptz,           -- its last report while healthy
    problems    text[] NOT NULL DEFAULT '{}',
    partitions  int NOT NULL DEFAULT 0,
    lag         bigint NOT NULL DEFAULT 0
);

CREATE VIEW stationwatch.pipeline_status AS
WITH recent AS (
    SELECT w.*,
           w.seen_at > now() - INTERVAL '15 seconds' AND NOT 'stopped' = ANY(w.problems)
               AS reporting
    FROM stationwatch.pipeline_workers AS w
)
SELECT max(seen_at) AS last_report_at,
       max(healthy_at) AS last_healthy_at,
       extract(epoch FROM now() - max(healthy_at))::double precision AS data_age_s,
       count(*) FILTER (WHERE reporting)::int AS workers_reporting,
       count(*) FILTER (WHERE reporting AND healthy)::int AS workers_healthy,
       CASE WHEN count(*) FILTER (WHERE reporting AND healthy) > 0 THEN 'live'
            WHEN count(*) FILTER (WHERE reporting) > 0 THEN 'degraded'
            ELSE 'down' END AS state
FROM recent;

CREATE VIEW stationwatch.station_current AS
WITH pipeline AS (
    SELECT coalesce(max(seen_at) > now() - INTERVAL '15 seconds', false) AS reporting
    FROM stationwatch.pipeline_workers
    WHERE NOT 'stopped' = ANY(problems)
)
SELECT c.station_id, c.name, c.category, c.street, c.district, c.lat, c.lon, c.services,
       c.lifecycle,
       CASE WHEN c.fresh_until < now() THEN 'unknown' ELSE c.liveness END AS liveness,
       CASE WHEN c.fresh_until < now() THEN c.fresh_until ELSE c.liveness_since END
           AS liveness_since,
       c.last_heartbeat_at, c.open_state, c.open_state_since,
       CASE WHEN p.reporting THEN c.scheduled_open END AS scheduled_open,
       c.occupants, c.capacity, c.occupancy_at, c.updated_at,
       c.liveness AS reported_liveness,
       c.fresh_until
FROM stationwatch.station_current_reported AS c
CROSS JOIN pipeline AS p;
