"""The committed Grafana dashboards are exactly what deploy/grafana/generate.py builds
(grafana-foundation-sdk, pinned), and every query can be scoped by the $job variable.
Their queries run against a real Prometheus in tests/integration/test_dashboards.py."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.paths import ROOT

GRAFANA = ROOT / "deploy" / "grafana"
# Classic dashboard JSON is what Grafana file provisioning loads (see ADR 0007).
pytestmark = pytest.mark.filterwarnings("ignore:Prefer using dashboardv2:DeprecationWarning")


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_dashboards_equal_the_generator_output() -> None:
    rendered = generator().render()
    committed = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert committed == rendered, "stale: run .venv/bin/python deploy/grafana/generate.py"


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = generator()
    monkeypatch.setattr(gen, "OUT_DIR", tmp_path)
    assert gen.main(["--check"]) == 1  # nothing written yet
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    (tmp_path / "drift.json").write_text("{}")
    assert gen.main(["--check"]) == 1


def test_dashboards_have_unique_uids_and_every_query_is_scoped_by_job() -> None:
    uids = set()
    for path in (GRAFANA / "dashboards").glob("*.json"):
        board = json.loads(path.read_text())
        uids.add(board["uid"])
        names = {v["name"] for v in board["templating"]["list"]}
        assert {"datasource", "job", "model"} <= names
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                selectors = re.findall(r"\{[^}]*\}", target["expr"])
                assert selectors and all('job=~"$job"' in s for s in selectors), target["expr"]
    assert len(uids) == 3
