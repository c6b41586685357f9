-- Rule checkpoints (ioc/rules/checkpoints.py): so that a late event can re-evaluate its device
-- from a state at or before it, each device keeps a few snapshots of its whole rule state.
-- Their rule rows live beside the committed ones in rule_state (checkpoint 0 is the committed
-- state, 1..3 are the snapshot entries 0..2); each snapshot's time and clocks are in
-- rule_checkpoints, and each device's horizon (events older than it are ignored by rules) in
-- rule_horizons. All are written in the batch's transaction, so a restart replays exactly
-- as the uninterrupted service would have.
ALTER TABLE rule_state ADD COLUMN checkpoint smallint NOT NULL DEFAULT 0;
ALTER TABLE rule_state DROP CONSTRAINT rule_state_pkey;
ALTER TABLE rule_state ADD PRIMARY KEY (device_id, checkpoint, rule_id);

CREATE TABLE rule_checkpoints (
    device_id       text COLLATE "C" NOT NULL,
    entry           smallint NOT NULL,
    at_us           bigint NOT NULL,
    clocks          jsonb NOT NULL,
    PRIMARY KEY (device_id, entry)
);

CREATE TABLE rule_horizons (
    device_id       text COLLATE "C" PRIMARY KEY,
    horizon_us      bigint NOT NULL
);

-- Corrections look up the alerts of a (rule, device) by when they started.
CREATE INDEX alerts_rule_device_started ON alerts (rule_id, device_id, started_at);

-- A correction from late data is a change of its own in the live feed.
ALTER TABLE alert_feed DROP CONSTRAINT alert_feed_change_check;
ALTER TABLE alert_feed ADD CONSTRAINT alert_feed_change_check
    CHECK (change IN ('fired', 'repeated', 'acknowledged', 'resolved', 'corrected'));
