-- Events on TimescaleDB: a hypertable with daily chunks, compressed per device after a week,
-- and continuous aggregates for 1-minute and 1-hour rollups. The retention policy is set by
-- the migration runner from IOC_RETENTION.

CREATE TABLE events (
    ts              timestamptz NOT NULL,
    device_id       text COLLATE "C" NOT NULL,
    event_id        text COLLATE "C" NOT NULL,
    kind            text COLLATE "C" NOT NULL,
    value           double precision NOT NULL,
    unit            text,
    attrs           jsonb,
    received_at     timestamptz NOT NULL DEFAULT now()
);

SELECT create_hypertable('events', 'ts', chunk_time_interval => interval '1 day',
                         create_default_indexes => false);
CREATE UNIQUE INDEX events_key ON events (ts, device_id, event_id);

ALTER TABLE events SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id',
    timescaledb.compress_orderby = 'ts DESC, event_id'
);
SELECT add_compression_policy('events', interval '7 days');

CREATE MATERIALIZED VIEW events_1m WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket('1 minute', ts) AS bucket,
       device_id, kind, avg(value) AS avg, min(value) AS min, max(value) AS max,
       sum(value) AS sum, count(*) AS count
FROM events GROUP BY 1, 2, 3
WITH NO DATA;
SELECT add_continuous_aggregate_policy('events_1m',
    start_offset => interval '3 hours', end_offset => interval '1 minute',
    schedule_interval => interval '1 minute');

CREATE MATERIALIZED VIEW events_1h WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket('1 hour', ts) AS bucket,
       device_id, kind, avg(value) AS avg, min(value) AS min, max(value) AS max,
       sum(value) AS sum, count(*) AS count
FROM events GROUP BY 1, 2, 3
WITH NO DATA;
SELECT add_continuous_aggregate_policy('events_1h',
    start_offset => interval '3 days', end_offset => interval '1 hour',
    schedule_interval => interval '30 minutes');
