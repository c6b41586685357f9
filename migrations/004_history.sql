-- The newest reading per device and kind, kept by the service (ioc/ingest/latest.py): the
-- device list and device view read it instead of searching events backwards per device.
-- A device-leading index on events would serve that too, but it halves the write rate of the
-- ts-leading table (measured with bench/write.py: 409k → 184k rows/s), so this table is
-- updated from memory every couple of seconds instead.
CREATE TABLE device_latest (
    device_id       text COLLATE "C" NOT NULL,
    kind            text COLLATE "C" NOT NULL,
    ts              timestamptz NOT NULL,
    value           double precision NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, kind)
);
