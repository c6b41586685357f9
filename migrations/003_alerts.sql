-- Alerts: the live feed behind GET /api/v1/alerts/stream, storm grouping of the outbox, and
-- indexes for the alert API and the ioc_alerts_open gauge.

-- One row per alert change (fired, repeated, acknowledged, resolved), read by SSE clients in id
-- order and replayed from here on reconnect (Last-Event-ID). Every writer takes the
-- transaction-level advisory lock ioc.alerts.lifecycle.FEED_LOCK before it touches an alert, so
-- feed ids commit in increasing order: once a reader has seen id N, no row with a smaller id can
-- become visible later. Rolled-back transactions leave holes, never late arrivals.
CREATE TABLE alert_feed (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    change      text NOT NULL CHECK (change IN ('fired', 'repeated', 'acknowledged', 'resolved')),
    district    text,
    severity    text NOT NULL,
    data        json NOT NULL,              -- the alert as the API shows it, plus "change"
    received_at double precision,           -- epoch s the causing event was received (latency)
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_feed_at ON alert_feed (at);

-- Outbox rows know their alert and storm group; a webhook row folded into a grouped message
-- points at the row that carries the message (merged_into) and shares its fate.
ALTER TABLE outbox
    ADD COLUMN alert_id     bigint,
    ADD COLUMN rule_id      text,
    ADD COLUMN district     text,
    ADD COLUMN change       text,
    ADD COLUMN grouped      boolean NOT NULL DEFAULT false,
    ADD COLUMN merged_into  bigint REFERENCES outbox (id) ON DELETE CASCADE;
CREATE INDEX outbox_group ON outbox (target, rule_id, change, id)
    WHERE delivered_at IS NULL AND failed_at IS NULL AND merged_into IS NULL;
CREATE INDEX outbox_merged ON outbox (merged_into) WHERE merged_into IS NOT NULL;
CREATE INDEX outbox_created ON outbox (created_at);

CREATE INDEX alerts_open_severity ON alerts (severity) WHERE state <> 'resolved';
CREATE INDEX alerts_rule ON alerts (rule_id, id);
