"""ioc-ingest: event ingestion, rules and alerts for a city operations centre."""
