-- Shared by both flavors: what the notifier keeps (`stationwatch notifier`).
--
-- notify_log: per receiver and alert group, what was last notified (like Alertmanager's
--   notification log): the ids of the alerts then firing and resolved, and when the notice was
--   made. A notice is sent only when it tells something new (or the repeat interval passed),
--   so a notifier that restarts and reads its alerts again does not repeat a notice.
-- notices: one row per notice: delivered, failed (after its retries) or pending, with its alerts.
-- notice_attempts: every try at delivering a notice, with the receiver's answer.
-- silences: time-bounded label matchers; a matching alert is recorded, not delivered.
-- suppressed_alerts: alerts a silence or an inhibition kept from a receiver.
-- deliveries (view): notices with their attempts, for the dashboards.

CREATE TABLE stationwatch.notify_log (
    receiver    text NOT NULL,
    group_key   text NOT NULL,
    firing      text[] NOT NULL,
    resolved    text[] NOT NULL,
    notice_id   text NOT NULL,
    sent_at     timestamptz NOT NULL,
    PRIMARY KEY (receiver, group_key)
);

CREATE TABLE stationwatch.notices (
    notice_id        text NOT NULL,
    receiver         text NOT NULL,
    channel          text NOT NULL,
    group_key        text NOT NULL,
    group_labels     jsonb NOT NULL,
    status           text NOT NULL,            -- firing | resolved (of the notice)
    outcome          text NOT NULL,            -- pending | delivered | failed
    alert_ids        text[] NOT NULL,
    station_ids      text[] NOT NULL,
    alerts           jsonb NOT NULL,
    attempts         int NOT NULL DEFAULT 0,
    last_error       text,
    created_at       timestamptz NOT NULL,
    first_detected_at timestamptz,             -- the earliest detection of its new alerts
    delivered_at     timestamptz,
    PRIMARY KEY (receiver, notice_id)
);
CREATE INDEX notices_created_at ON stationwatch.notices (created_at DESC);

CREATE TABLE stationwatch.notice_attempts (
    notice_id    text NOT NULL,
    receiver     text NOT NULL,
    attempt      int NOT NULL,
    at           timestamptz NOT NULL,
    ok           boolean NOT NULL,
    retriable    boolean NOT NULL,
    status_code  int,
    detail       text NOT NULL DEFAULT '',
    PRIMARY KEY (receiver, notice_id, attempt)
);

CREATE TABLE stationwatch.silences (
    silence_id   uuid PRIMARY KEY,
    matchers     text[] NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    created_by   text NOT NULL,
    comment      text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX silences_ends_at ON stationwatch.silences (ends_at);

CREATE TABLE stationwatch.suppressed_alerts (
    alert_id     text NOT NULL,
    status       text NOT NULL,                -- firing | resolved
    receiver     text NOT NULL,
    station_id   text NOT NULL,
    kind         text NOT NULL,
    reason       text NOT NULL,                -- silenced | inhibited
    silence_id   uuid,
    at           timestamptz NOT NULL,
    PRIMARY KEY (alert_id, status, receiver)
);

CREATE VIEW stationwatch.deliveries AS
SELECT n.notice_id,
       n.receiver,
       n.channel,
       n.group_key,
       n.group_labels,
       n.status,
       n.outcome,
       n.attempts,
       n.last_error,
       n.alert_ids,
       n.station_ids,
       cardinality(n.alert_ids) AS alert_count,
       n.created_at,
       n.delivered_at,
       n.first_detected_at,
       extract(epoch FROM n.delivered_at - n.first_detected_at) AS latency_s
FROM stationwatch.notices n;
