"""Local infrastructure for development, tests and the demo: real Kafka (KRaft), Redis,
Prometheus and Alertmanager on 127.0.0.1, installed and started without Docker.

``modelguard-stack up|down|status|install`` (or ``python -m modelguard_devstack``).
"""

from modelguard_devstack.stack import Endpoints, Stack, StackConfig, StackError

__all__ = ["Endpoints", "Stack", "StackConfig", "StackError"]
