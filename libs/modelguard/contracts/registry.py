"""Every event model that has a JSON Schema file under ``schemas/``."""

from __future__ import annotations

import json
from pathlib import Path

from modelguard.contracts.base import Event
from modelguard.contracts.dead_letter import DeadLetter
from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.drift import DriftSignal
from modelguard.contracts.experiments import (
    ExperimentAnalysis,
    ExperimentSpec,
    ExposureLogged,
    OutcomeObserved,
)
from modelguard.contracts.metric_window import MetricWindowClosed
from modelguard.contracts.predictions import LabelObserved, PredictionLogged
from modelguard.contracts.routing import RoutingTable

EVENT_MODELS: tuple[type[Event], ...] = (
    PredictionLogged,
    LabelObserved,
    ExposureLogged,
    OutcomeObserved,
    ExperimentSpec,
    ExperimentAnalysis,
    MetricWindowClosed,
    DriftSignal,
    RoutingDecision,
    RoutingTable,
    DeadLetter,
)


def schema_files() -> dict[str, str]:
    """File name -> rendered JSON Schema text for every event model."""
    return {
        f"{m.schema_name}.v{m.schema_version}.json": json.dumps(
            m.json_schema(), indent=2, sort_keys=True
        )
        + "\n"
        for m in EVENT_MODELS
    }


def stale_schema_files(directory: Path) -> list[str]:
    """Names of schema files that are missing, different or no longer generated."""
    expected = schema_files()
    stale = [
        name
        for name, text in expected.items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
    stale += sorted(p.name for p in directory.glob("*.json") if p.name not in expected)
    return sorted(stale)


def write_schema_files(directory: Path) -> list[str]:
    """(Re)generate the schema files; removes files of events that no longer exist."""
    directory.mkdir(parents=True, exist_ok=True)
    expected = schema_files()
    for p in directory.glob("*.json"):
        if p.name not in expected:
            p.unlink()
    for name, text in expected.items():
        (directory / name).write_text(text)
    return sorted(expected)
