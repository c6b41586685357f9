"""PostgreSQL/TimescaleDB access: pools, migrations, the batch writer and queries.

Every SQL statement of the service is written in this package, and it knows nothing above it:
it never imports ingest, alerts, the service or the API. Of the pure ``rules`` package it
uses only the model (``DeviceMeta``), to hand the engine its devices.
"""
