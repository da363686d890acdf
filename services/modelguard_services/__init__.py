"""modelguard services: thin entry points wiring the core to Kafka, Redis and Prometheus."""
