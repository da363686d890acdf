"""modelguard services: thin entry points wiring the core to Kafka, Redis and Prometheus.

:data:`SERVICES` is the one list of deployed services: each is a package here with a
``__main__.py`` (run as ``python -m modelguard_services.<name>``), built from
``deploy/Dockerfile`` with ``--build-arg SERVICE=<name>`` and run by docker-compose.yml and
the Helm chart. :data:`LOCAL_TOOLS` are runnable packages that are not deployed.
"""

SERVICES: tuple[str, ...] = (
    "controller",
    "drift",
    "experiments",
    "metrics",
    "simulator",
    "validator",
)
#: Runnable (``python -m``) but never deployed: the README demo.
LOCAL_TOOLS: tuple[str, ...] = ("demo",)
