-- Alerts waiting to be posted to alerts.webhook_url, oldest first: the
-- body as posted, how many posts failed, and when the next may be tried
-- (Unix microseconds, UTC). Kept in the store, so a restart posts them.
CREATE TABLE alert_deliveries (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    body      TEXT    NOT NULL,
    attempts  INTEGER NOT NULL DEFAULT 0,
    next_at   INTEGER NOT NULL
);
