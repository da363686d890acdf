"""JSON Schema files under schemas/ are generated from the models and must be fresh."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelguard.cli import main
from modelguard.contracts.registry import EVENT_MODELS, stale_schema_files, write_schema_files
from tests.support.paths import ROOT

SCHEMAS = ROOT / "schemas"


def test_committed_schemas_are_fresh() -> None:
    stale = stale_schema_files(SCHEMAS)
    assert stale == [], f"stale schema files {stale}: run `modelguard schemas write`"


def test_stale_missing_and_orphan_files_are_detected(tmp_path: Path) -> None:
    write_schema_files(tmp_path)
    assert stale_schema_files(tmp_path) == []
    target = tmp_path / "prediction_logged.v1.json"
    target.write_text(target.read_text().replace('"latency_ms"', '"latency"'))
    (tmp_path / "label_observed.v1.json").unlink()
    (tmp_path / "retired_event.v1.json").write_text("{}")
    assert stale_schema_files(tmp_path) == [
        "label_observed.v1.json",
        "prediction_logged.v1.json",
        "retired_event.v1.json",
    ]


def test_cli_check_fails_on_stale_and_passes_after_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schemas", "check", "--dir", str(tmp_path)]) == 1
    assert "stale JSON Schema files" in capsys.readouterr().err
    assert main(["schemas", "write", "--dir", str(tmp_path)]) == 0
    assert main(["schemas", "check", "--dir", str(tmp_path)]) == 0


def test_every_event_has_a_valid_draft_2020_schema() -> None:
    import jsonschema

    for model in EVENT_MODELS:
        schema = json.loads(
            (SCHEMAS / f"{model.schema_name}.v{model.schema_version}.json").read_text()
        )
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$id"].endswith(f"{model.schema_name}.v1.json")
