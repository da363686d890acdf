"""Metrics processor service: delayed-label join and live model performance over Kafka.

The logic is ``modelguard.core.metrics``; this package runs it with a confluent-kafka
loop, checkpoints each partition's state with its source offsets to a compacted
changelog topic (ADR 0007), publishes ``MetricWindowClosed`` events and serves the
Prometheus metrics.
"""
