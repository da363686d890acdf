"""``modelguard --help`` imports no heavy module (river, scikit-learn, scipy, pandas).

Deterministic: reads ``python -X importtime`` of a real ``--help`` run, not a timing.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("river", "sklearn", "scipy", "pandas", "pyarrow", "confluent_kafka", "redis")


def _imported(argv: list[str]) -> set[str]:
    code = "import sys; from modelguard.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: modelguard" in proc.stdout
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert names, "no -X importtime output"
    return names


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["drift", "--help"], ["experiment", "--help"], ["control", "--help"]],
)
def test_help_imports_no_heavy_module(argv: list[str]) -> None:
    names = _imported(argv)
    heavy = sorted(n for n in names if n.split(".")[0] in HEAVY)
    assert heavy == [], f"`modelguard {' '.join(argv)}` imported {heavy[:10]}"
