"""One home per formula and one event-id scheme (issue 10 items 2 and 4).

The accuracy-drop and error-rate formulas live in ``modelguard.core.metrics.formulas``;
each is pinned here to its closed form (exact rational arithmetic as the oracle), and the
metrics processor, the partial-window merge and the guardrail assessment are checked to
give exactly what the formula gives. Deterministic ids all come from
``modelguard.contracts.ids.stable_id`` (pinned to SHA-256 over the parts).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import math
import re
import tokenize
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelguard.contracts.ids import stable_id
from modelguard.core.control import partials
from modelguard.core.control.evidence import WindowRecord
from modelguard.core.control.policy import parse_policies
from modelguard.core.metrics import Aggregate, ClosedWindow, MetricsConfig, PartitionState
from modelguard.core.metrics.baseline import baseline_comparison
from modelguard.core.metrics.formulas import accuracy_drop_percent, error_rate
from tests.support.paths import ROOT

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
assess_module = importlib.import_module("modelguard.core.control.assess")
LIBS = ROOT / "libs" / "modelguard"

counts = st.integers(min_value=0, max_value=10**6)
shares = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
positive = st.floats(min_value=1e-6, max_value=1.0, allow_nan=False)


# -- the formulas against their closed forms ---------------------------------------------
@given(counts, counts)
def test_error_rate_is_errors_over_predictions(n_errors: int, extra: int) -> None:
    n = n_errors + extra
    rate = error_rate(n_errors, n)
    if n == 0:
        assert rate is None
    else:
        assert rate is not None
        assert Fraction(rate) == pytest.approx(Fraction(n_errors, n), rel=1e-15, abs=0)
        assert 0.0 <= rate <= 1.0


@given(positive, shares)
def test_accuracy_drop_is_relative_percent_of_the_baseline(base: float, acc: float) -> None:
    exact = (Fraction(base) - Fraction(acc)) / Fraction(base) * 100
    assert accuracy_drop_percent(base, acc) == pytest.approx(float(exact), rel=1e-12, abs=1e-9)


def test_formula_fixed_points() -> None:
    assert error_rate(1, 4) == 0.25
    assert error_rate(0, 0) is None
    assert accuracy_drop_percent(0.8, 0.8) == 0.0
    assert accuracy_drop_percent(0.8, 0.4) == 50.0
    assert accuracy_drop_percent(0.5, 0.75) == -50.0  # a gain is a negative drop
    with pytest.raises(ValueError, match="baseline"):
        accuracy_drop_percent(0.0, 0.5)


# -- every caller uses them ---------------------------------------------------------------
def _agg(n: int, errors: int, correct: int, labelled: int) -> Aggregate:
    from modelguard.core.metrics import Pair

    agg = Aggregate()
    for i in range(n):
        agg.add_prediction(None if i < errors else "1", 10.0, "timeout" if i < errors else None)
    for i in range(labelled):
        agg.add_pair(Pair.classification("1", "1" if i < correct else "0", None, 1.0))
    return agg


@given(st.integers(1, 500), st.integers(0, 500), st.integers(1, 200), st.integers(0, 200))
def test_window_metrics_use_the_formulas(n: int, e: int, labelled: int, c: int) -> None:
    errors, correct = min(e, n), min(c, labelled)
    metrics = _agg(n, errors, correct, labelled).metrics()
    assert metrics["error_rate"] == error_rate(errors, n)
    state = PartitionState()
    cfg = MetricsConfig(baselines={"m": 0.9})
    cmp = baseline_comparison(cfg, state, "m", metrics["accuracy"], labelled)
    assert cmp is not None
    assert cmp[1] == accuracy_drop_percent(0.9, metrics["accuracy"])


def _partial(partition: int, agg: Aggregate | None, base: float) -> ClosedWindow:
    metrics = agg.metrics() if agg is not None else {}
    metrics["baseline_accuracy"] = base
    return ClosedWindow(
        "m", "v2", "tumbling", 10.0, None, T0.timestamp(), T0.timestamp() + 10, partition,
        agg or Aggregate(), metrics,
    )  # fmt: skip


@pytest.mark.parametrize("exact", [True, False])
def test_merged_partials_use_the_formulas(exact: bool) -> None:
    from modelguard.core.metrics import to_event

    a, b = _agg(300, 7, 80, 100), _agg(200, 3, 50, 100)
    events = [to_event(_partial(p, agg, 0.9), emitted_at=T0) for p, agg in enumerate((a, b))]
    if not exact:
        events = [e.model_copy(update={"aggregate": None}) for e in events]
    pending = partials.start(events[0])
    for e in events:
        partials.add(pending, e)
    rec = partials.finish("m", pending, complete=True)
    assert rec.metrics["error_rate"] == error_rate(10, 500)
    if exact:
        assert rec.metrics["accuracy_drop_percent"] == accuracy_drop_percent(0.9, 130 / 200)


def _record(metrics: dict[str, float], n: int = 1000, errors: int = 20) -> WindowRecord:
    return WindowRecord(
        event_id="mw-x",
        version="v2",
        window="tumbling:10",
        window_start=T0,
        window_end=T0 + timedelta(seconds=10),
        n_predictions=n,
        n_labelled=n,
        n_errors=errors,
        metrics=metrics,
    )


def test_guardrail_values_use_the_formulas() -> None:
    p = parse_policies(
        "models: {m: {guardrails: ["
        "{name: e, kind: error_rate, threshold: 0.01},"
        "{name: a, kind: accuracy_drop, max_drop_percent: 5, baseline: 0.9}]}}"
    )["m"]
    err, acc = p.guardrails
    ev = assess_module.Evidence("v2", now=T0)
    value, problem = assess_module._value(err, _record({}), ev)  # counts only: the formula
    assert (value, problem) == (error_rate(20, 1000), None)
    value, problem = assess_module._value(acc, _record({"accuracy": 0.81}), ev)
    assert (value, problem) == (accuracy_drop_percent(0.9, 0.81), None)


def _code(path: Path) -> str:
    """The source of ``path`` without strings and comments (docs may quote a formula)."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    skip = {tokenize.STRING, tokenize.COMMENT}
    return " ".join(t.string for t in tokens if t.type not in skip)


def test_no_module_repeats_a_formula() -> None:
    """The formulas' expressions appear in ``formulas.py`` only."""
    patterns = [
        re.compile(r"\)\s*/\s*base\w*\s*\*\s*100"),  # (base - acc) / base * 100
        re.compile(r"n_errors\s*/\s*\w*\.?n_predictions"),  # n_errors / n_predictions
    ]
    offenders = [
        str(path.relative_to(LIBS))
        for path in LIBS.rglob("*.py")
        if path.name != "formulas.py" and any(p.search(_code(path)) for p in patterns)
    ]
    assert offenders == []


# -- one event-id scheme ------------------------------------------------------------------
def test_stable_id_is_sha256_over_the_joined_parts() -> None:
    digest = hashlib.sha256(b"fraud\x1fv2\x1f3").hexdigest()
    assert stable_id("dec", "fraud", "v2", 3) == "dec-" + digest[:20]
    assert stable_id("a", "b|c") != stable_id("a", "b", "c")


def test_window_and_merged_window_ids_use_the_scheme() -> None:
    w = _partial(3, _agg(10, 0, 5, 5), 0.9)
    assert w.event_id == stable_id("mw", "m", "v2", "tumbling:10.0", repr(w.start), 3)
    merged = partials.merged_window_id("m", "v2", "tumbling:10", T0)
    assert merged == stable_id("mw", "m", "v2", "tumbling:10", T0.isoformat())
    assert not math.isnan(w.metrics["accuracy"])


def test_no_module_hashes_its_own_event_ids() -> None:
    """Deterministic ids come from ``stable_id``; content hashes (a reference's id, a
    policy's hash, a class key) are not event ids."""
    own = re.compile(r"hashlib\.\w+\([^)]*\)\.hexdigest\(\)\[:\d+\]")
    allowed = {"contracts/ids.py", "core/drift/reference.py",
               "core/control/policy.py", "core/metrics/pairs.py"}  # fmt: skip
    offenders = [
        rel
        for path in LIBS.rglob("*.py")
        if (rel := str(path.relative_to(LIBS))) not in allowed and own.search(path.read_text())
    ]
    assert offenders == []


# -- one compare-and-set script, one RoutingWriter protocol -------------------------------
def test_one_redis_cas_script() -> None:
    """Compare-and-set by revision is written once, in ``adapters/redis_cas.py`` (the
    routing table store and the experiment registry use it); the drift store's publish
    script is a different operation (install-if-absent of a reference pointer)."""
    cas = re.compile(r"~=\s*tonumber\(ARGV")
    scripts = [
        str(path.relative_to(LIBS)) for path in LIBS.rglob("*.py") if cas.search(path.read_text())
    ]
    assert scripts == ["adapters/redis_cas.py"]


def test_one_routing_writer_protocol() -> None:
    from modelguard.experiments import registry
    from modelguard.routing import RoutingTableStore, RoutingWriter
    from modelguard_services.controller import outbox

    assert registry.RoutingWriter is RoutingWriter
    assert outbox.RoutingWriter is RoutingWriter
    protocol = {n for n in vars(RoutingWriter) if not n.startswith("_")}
    assert protocol <= set(dir(RoutingTableStore))
    roots = [LIBS, LIBS.parents[1] / "services"]
    defined = [
        str(path)
        for root in roots
        for path in root.rglob("*.py")
        if "class RoutingWriter(" in path.read_text()
    ]
    assert [Path(p).name for p in defined] == ["writer.py"]


def test_the_metrics_changelog_topic_is_named_in_one_place() -> None:
    """``metrics.app.changelog_topic`` is the one home of the changelog's name; the demo's
    clean-up spelled it out again (``f"{prefix}.metrics-changelog.v1"``)."""
    services = ROOT / "services" / "modelguard_services"
    offenders = sorted(
        str(path.relative_to(ROOT))
        for root in (LIBS, services)
        for path in root.rglob("*.py")
        if "metrics-changelog" in path.read_text()
    )
    assert offenders == ["services/modelguard_services/metrics/app.py"]
