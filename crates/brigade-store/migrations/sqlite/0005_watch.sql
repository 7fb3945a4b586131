-- brigade watch: alert state, alert history, silences and the notification log.
-- Bodies are JSON documents owned by brigade-watch; the columns beside them are what is
-- queried or ordered by. The same text serves SQLite and PostgreSQL.

-- The alerts of each alerting rule (pending, firing, recently resolved), so a restart
-- continues where the last process stopped.
CREATE TABLE watch_alert_state (
    rule_key    TEXT PRIMARY KEY NOT NULL,
    body        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Every state change of every alert, newest last (ids are UUID v7, ordered by time).
CREATE TABLE watch_alert_history (
    id           TEXT PRIMARY KEY NOT NULL,
    fingerprint  TEXT NOT NULL,
    alertname    TEXT NOT NULL,
    state        TEXT NOT NULL,
    at_ms        BIGINT NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX watch_alert_history_by_time ON watch_alert_history (at_ms);

CREATE TABLE watch_silences (
    id          TEXT PRIMARY KEY NOT NULL,
    body        TEXT NOT NULL,
    ends_at_ms  BIGINT NOT NULL
);

-- What was last notified per receiver and group: the guard against notifying twice.
CREATE TABLE watch_notification_log (
    log_key     TEXT PRIMARY KEY NOT NULL,
    body        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
