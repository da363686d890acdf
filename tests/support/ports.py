"""Free local ports, and the config of a broker private to one test."""

from __future__ import annotations

import socket
from pathlib import Path

from modelguard_devstack import StackConfig
from modelguard_devstack.config import find_repo_root


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def private_kafka_config(run_dir: Path) -> StackConfig:
    """A stack config for a Kafka broker of one test only: free ports for its listeners
    (the session's broker holds the configured ones) and its own run directory."""
    return StackConfig(
        root=find_repo_root(),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_sasl_port=free_port(),
        run_dir_override=run_dir,
    )
