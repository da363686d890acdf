"""Drift processor service: predictions and labels in; drift signals, Prometheus drift
metrics and readable reports out. The logic lives in ``modelguard.core.drift``."""
