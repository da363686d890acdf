"""Experiments processor: A/B bookkeeping from Kafka, analyses, ramps and bandit weights."""
