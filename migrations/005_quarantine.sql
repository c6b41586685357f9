-- Messages that crashed the pipeline (not bad input: the decoder turns that into dead letters).
-- A message that crashed it twice is quarantined as a `poison` dead letter, so a restart that
-- receives it again from the broker does not crash on it again. Kept here, not only in memory,
-- because the second crash may come after a restart (kill -9, the process manager).
CREATE TABLE ingest_suspects (
    fingerprint     bytea PRIMARY KEY,
    crashes         integer NOT NULL,
    first_at        timestamptz NOT NULL DEFAULT now(),
    last_at         timestamptz NOT NULL DEFAULT now()
);
