"""PostgreSQL/TimescaleDB access: pools, migrations, the batch writer and queries.

This package knows SQL and nothing above it: it never imports ingest, rules, alerts or api.
"""
