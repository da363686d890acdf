"""modelguard: watch ML models in production and roll back bad versions automatically.

Layers (see ``docs/adr``): :mod:`modelguard.contracts` (event models, topics, keys),
:mod:`modelguard.core` (pure logic, no I/O), :mod:`modelguard.adapters` (Kafka, Redis,
Prometheus, logging, settings). Services live in ``modelguard_services``.
"""

__version__ = "0.1.0"
