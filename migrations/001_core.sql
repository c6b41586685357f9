-- Core tables shared by the TimescaleDB and plain PostgreSQL paths.
-- Identifiers that are compared on every write (device and event ids) use the "C" collation:
-- byte order is all uniqueness needs and it is several times cheaper than a linguistic collation.

CREATE TABLE devices (
    id              text COLLATE "C" PRIMARY KEY,
    name            text,
    kind            text,
    district        text,
    ward            text,
    lat             double precision CHECK (lat BETWEEN -90 AND 90),
    lon             double precision CHECK (lon BETWEEN -180 AND 180),
    "interval"      interval,
    tags            text[] NOT NULL DEFAULT '{}',
    registered_by   text NOT NULL DEFAULT 'auto' CHECK (registered_by IN ('file', 'api', 'auto')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_district ON devices (district);

CREATE TABLE dead_letters (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    source          text NOT NULL,
    topic           text,
    "partition"     integer,
    "offset"        bigint,
    reason          text NOT NULL,
    detail          text,
    raw             bytea NOT NULL,
    replayed_at     timestamptz,
    replayed_by     text
);
CREATE INDEX dead_letters_received ON dead_letters (received_at);
CREATE INDEX dead_letters_reason ON dead_letters (reason, received_at);

CREATE TABLE rules (
    id              text PRIMARY KEY,
    definition      jsonb NOT NULL,
    version         integer NOT NULL DEFAULT 1,
    source          text NOT NULL DEFAULT 'file' CHECK (source IN ('file', 'api')),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text
);

CREATE TABLE rule_versions (
    rule_id         text NOT NULL,
    version         integer NOT NULL,
    action          text NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    definition      jsonb,
    changed_by      text,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, version)
);

CREATE TABLE rule_state (
    rule_id         text NOT NULL,
    device_id       text COLLATE "C" NOT NULL,
    state           jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, device_id)
);

CREATE TABLE alerts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id         text NOT NULL,
    device_id       text COLLATE "C" NOT NULL,
    district        text,
    kind            text,
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state           text NOT NULL DEFAULT 'firing'
                    CHECK (state IN ('firing', 'acknowledged', 'resolved')),
    message         text NOT NULL DEFAULT '',
    value           double precision,
    count           integer NOT NULL DEFAULT 1,
    started_at      timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    resolved_by     text,
    silenced        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- At most one open alert per (rule, device), whatever the number of writers.
CREATE UNIQUE INDEX alerts_one_open ON alerts (rule_id, device_id) WHERE state <> 'resolved';
CREATE INDEX alerts_started ON alerts (started_at DESC);
CREATE INDEX alerts_district_state ON alerts (district, state);

CREATE TABLE alert_audit (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    action          text NOT NULL,
    actor           text NOT NULL,
    note            text,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_audit_alert ON alert_audit (alert_id, id);

CREATE TABLE silences (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    matchers        jsonb NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL CHECK (ends_at > starts_at),
    comment         text,
    created_by      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX silences_active ON silences (ends_at);

CREATE TABLE api_keys (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text,
    role            text NOT NULL CHECK (role IN ('admin', 'operator', 'agency', 'ingest')),
    districts       text[],
    key_hash        text NOT NULL UNIQUE,
    prefix          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz
);

-- Transactional outbox: notifications written with the alert change that caused them.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id     uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    channel         text NOT NULL,
    target          text,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    failed_at       timestamptz,
    last_error      text
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
