-- Shared by both flavors: the registry's history, inspections and patrols (`stationwatch stations …`).
--
-- station_history: every registry change (written by the worker when it applies a record that
--   differs from the one it held: added, changed, lifecycle, removed) and every inspection
--   (written by `stations inspect`), with who made it and how (a command, an import file) and the
--   changed fields' old and new values. Keyed on (station_id, time, what): a record delivered
--   twice writes one row. A plain table in both flavors: a few rows per station and year, kept
--   for good (no retention policy may drop "when did it close, and why").
-- inspections: one row per patrol or inspection of a station, `pass` or `issues`, with a note.
-- patrol_policy: the patrol interval the dashboards use (`stationwatch migrate` records
--   STATIONWATCH_PATROL_INTERVAL_DAYS here; 30 days while it holds no row).
-- stations_patrol (view): every station in service (lifecycle active, or a temporary closure
--   past its end) with its responsible person and its last inspection.
-- stations_overdue (view): those not inspected within the patrol interval (never inspected:
--   overdue, days_overdue NULL), for the dashboards; `stations overdue` lists the same.

CREATE TABLE stationwatch.station_history (
    station_id  text NOT NULL,
    time        timestamptz NOT NULL,
    what        text NOT NULL
                CHECK (what IN ('added', 'changed', 'lifecycle', 'removed', 'inspection')),
    changed_by  text,
    changed_via text,
    old         jsonb,
    new         jsonb,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (station_id, time, what)
);

CREATE INDEX station_history_time_idx ON stationwatch.station_history (time DESC);

CREATE TABLE stationwatch.inspections (
    inspection_id uuid PRIMARY KEY,
    station_id    text NOT NULL,
    inspected_at  timestamptz NOT NULL,
    result        text NOT NULL CHECK (result IN ('pass', 'issues')),
    note          text NOT NULL DEFAULT '',
    inspected_by  text NOT NULL,
    recorded_via  text NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX inspections_station_idx ON stationwatch.inspections (station_id, inspected_at DESC);

CREATE TABLE stationwatch.patrol_policy (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    interval_days int NOT NULL CHECK (interval_days BETWEEN 1 AND 3650),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE VIEW stationwatch.stations_patrol AS
SELECT s.station_id,
       s.name,
       s.district,
       s.street,
       s.profile ->> 'responsible_person' AS responsible_person,
       s.profile ->> 'responsible_phone' AS responsible_phone,
       last.inspected_at AS last_inspection_at,
       last.result AS last_result,
       last.inspected_by AS last_inspected_by
FROM stationwatch.stations AS s
LEFT JOIN LATERAL (
    SELECT i.inspected_at, i.result, i.inspected_by
    FROM stationwatch.inspections AS i
    WHERE i.station_id = s.station_id
    ORDER BY i.inspected_at DESC
    LIMIT 1
) AS last ON true
WHERE s.lifecycle = 'active'
   OR (s.lifecycle = 'temporarily_closed'
       AND (s.profile ->> 'closed_until')::timestamptz <= now());

CREATE VIEW stationwatch.stations_overdue AS
WITH policy AS (
    SELECT coalesce((SELECT interval_days FROM stationwatch.patrol_policy), 30) AS interval_days
)
SELECT p.station_id,
       p.name,
       p.district,
       p.street,
       p.responsible_person,
       p.responsible_phone,
       p.last_inspection_at,
       p.last_result,
       p.last_inspected_by,
       policy.interval_days,
       p.last_inspection_at + make_interval(days => policy.interval_days) AS due_at,
       floor(extract(epoch FROM now()
             - (p.last_inspection_at + make_interval(days => policy.interval_days))) / 86400
       )::int AS days_overdue
FROM stationwatch.stations_patrol AS p
CROSS JOIN policy
WHERE p.last_inspection_at IS NULL
   OR p.last_inspection_at + make_interval(days => policy.interval_days) < now();
