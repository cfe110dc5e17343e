-- Alerts waiting to be posted to alerts.webhook_url, oldest first: the
-- body as posted, how many posts failed, and when the next may be tried.
-- Kept in the store, so an instance that dies leaves them to the next
-- (in a cluster, the leader posts them).
CREATE TABLE alert_deliveries (
    id bigserial PRIMARY KEY,
    body text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_at timestamptz NOT NULL DEFAULT now()
);
