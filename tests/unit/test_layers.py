"""The layer rule (DESIGN.md, ADR 0001): libs never import services or the dev stack;
the pure core imports no adapter, no I/O client and reads no clock."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import ROOT

LIBS = ROOT / "libs" / "modelguard"
FORBIDDEN_IN_LIBS = ("modelguard_services", "modelguard_devstack")
FORBIDDEN_IN_CORE = (
    *FORBIDDEN_IN_LIBS,
    "modelguard.adapters",
    "confluent_kafka",
    "faust",
    "redis",
    "prometheus_client",
    "structlog",
)


CLOCK_CALLS = ("datetime.now(", "time.time(", "time.monotonic(", "utcnow(", "random.seed(")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _violations(root: Path, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(LIBS)} imports {name}")
    return bad


def test_libs_do_not_import_services_or_devstack() -> None:
    assert _violations(LIBS, FORBIDDEN_IN_LIBS) == []


def test_core_is_pure() -> None:
    assert _violations(LIBS / "core", FORBIDDEN_IN_CORE) == []


def test_core_reads_no_clock() -> None:
    offenders = [
        str(p.relative_to(LIBS))
        for p in (LIBS / "core").rglob("*.py")
        if any(
            s in p.read_text() for s in ("datetime.now(", "time.time(", "utcnow(", "random.seed(")
        )
    ]
    assert offenders == []
