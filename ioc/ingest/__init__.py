"""Sources (MQTT, Kafka, HTTP), decoding, micro-batching and dead letters."""
