-- Alert audit and feed rows without foreign keys to alerts. Alerts are never deleted (a
-- withdrawn alert is resolved by 'late-data', and retention prunes only feed and outbox rows),
-- so no audit or feed row can lose its alert; the keys only cost a lookup of alerts for every
-- row written — two per alert change, about 6 µs each, in every batch of a flood.
ALTER TABLE alert_audit DROP CONSTRAINT alert_audit_alert_id_fkey;
ALTER TABLE alert_feed DROP CONSTRAINT alert_feed_alert_id_fkey;
