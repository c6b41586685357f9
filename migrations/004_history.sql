-- History queries (GET /events, /events/aggregate, /devices, completeness) filter by device far
-- more often than they scan a whole time range. The unique key leads with ts, so "one device over
-- a day" had to walk every device's rows of that day and "last reading of a device" walked
-- backwards through all devices' rows until it met one of its own (with 2,000 devices: ~330k
-- index entries a day for ~170 of one device). A device-leading index makes both a short range
-- scan. The build locks writes to events once, for as long as it takes on existing data.
-- On TimescaleDB it covers uncompressed chunks; compressed ones are segmented by device_id already.
CREATE INDEX events_device_ts ON events (device_id, ts);
