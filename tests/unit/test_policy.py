"""Policies: YAML loading with clear errors, and the pure assess() verdicts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from modelguard.contracts.common import Severity
from modelguard.core.control import Evidence, PolicyError, assess, load_policies, parse_policies
from modelguard.core.control.evidence import DriftRecord, WindowRecord
from modelguard.core.control.policy import policy_hash
from tests.support.control import T0, drift_signal, metric_window
from tests.support.control import after as at
from tests.support.paths import ROOT

POLICY = """
models:
  fraud:
    max_evidence_age_seconds: 120
    guardrails:
      - {name: errors, kind: error_rate, threshold: 0.01, hysteresis: 0.004, min_samples: 50}
      - {name: latency, kind: latency, threshold: 500, min_samples: 50}
      - {name: accuracy, kind: accuracy_drop, max_drop_percent: 2, min_samples: 50,
         consecutive: 2}
"""


def window(
    i: int,
    version: str = "v2",
    *,
    acc: float = 0.9,
    errors: int = 0,
    n: int = 100,
    p95: float = 50.0,
    extra: dict[str, float] | None = None,
) -> WindowRecord:
    metrics = {"accuracy": acc, "latency_p95_ms": p95, **(extra or {})}
    return WindowRecord.from_event(metric_window(i, version, n=n, errors=errors, metrics=metrics))


def drift(i: int, severity: Severity, detected: bool = True, kind: str = "data") -> DriftRecord:
    signal = drift_signal(i, severity, detected=detected, statistic=0.4, n_current=500, kind=kind)
    return DriftRecord.from_event(signal)


@pytest.fixture
def policy():  # type: ignore[no-untyped-def]
    return parse_policies(POLICY, "test.yaml")["fraud"]


# --- loading -------------------------------------------------------------------------


def test_example_policy_files_load() -> None:
    policies = load_policies(ROOT / "deploy" / "policies")
    assert policies, "deploy/policies holds at least one model"
    for name, p in policies.items():
        assert p.model == name
        assert p.rollout.steps[-1] == 100.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "models: {fraud: {guardrails: [{name: e, kind: error_rate, threshold: 1.5}]}}",
            "models.fraud.guardrails.0.error_rate: Value error, error_rate threshold is a fraction",
        ),
        (
            "models: {fraud: {guardrails: [{name: e, kind: bogus, threshold: 1}]}}",
            "models.fraud.guardrails.0: Input tag 'bogus' found using 'kind' does not match",
        ),
        (
            "models: {fraud: {guardrails: [{name: e, kind: latency, threshold: 5, colour: 1}]}}",
            "models.fraud.guardrails.0.latency.colour: Extra inputs are not permitted",
        ),
        (
            "models: {fraud: {rollout: {steps: [5, 1, 100]},"
            " guardrails: [{name: e, kind: latency, threshold: 5}]}}",
            "models.fraud.rollout: Value error, steps must increase strictly",
        ),
        (
            "models: {fraud: {rollout: {steps: [1, 50]},"
            " guardrails: [{name: e, kind: latency, threshold: 5}]}}",
            "models.fraud.rollout: Value error, the last step must be 100",
        ),
        (
            "models: {fraud: {guardrails: [{name: e, kind: latency, threshold: 5},"
            " {name: e, kind: latency, threshold: 9}]}}",
            "models.fraud: Value error, guardrail names must be unique, repeated: ['e']",
        ),
        (
            "models: {'bad name': {guardrails: [{name: e, kind: latency, threshold: 5}]}}",
            "models.bad name.[key]: String should match pattern",
        ),
        ("models: [1, 2]", "models: Input should be a valid dictionary"),
        ("models: {fraud: {guardrails: [", "not valid YAML"),
        ("- just a list", "expected a mapping with a 'models' key"),
        (
            "models: {fraud: {guardrails: [{name: c, kind: concept_drift, min_severity: severe}]}}",
            "models.fraud.guardrails.0.concept_drift.min_severity: Input should be 'low'",
        ),
    ],
)
def test_bad_policy_names_file_and_field(text: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policies(text, "deploy/policies/x.yaml")
    message = str(err.value)
    assert message.startswith("deploy/policies/x.yaml: "), message
    assert fragment in message, message


def test_policy_hash_is_stable_and_sensitive(policy) -> None:  # type: ignore[no-untyped-def]
    same = parse_policies(POLICY)["fraud"]
    assert policy_hash(policy) == policy_hash(same)
    changed = parse_policies(POLICY.replace("threshold: 500", "threshold: 400"))["fraud"]
    assert policy_hash(changed) != policy_hash(policy)
    assert policy_hash(policy).startswith("sha256:")


def test_directory_with_duplicate_model_is_rejected(tmp_path: Path) -> None:
    for f in ("a.yaml", "b.yaml"):
        (tmp_path / f).write_text(POLICY)
    with pytest.raises(PolicyError, match=r"b.yaml: models.fraud: defined in more than one"):
        load_policies(tmp_path)
    with pytest.raises(PolicyError, match="nothing-here: cannot read: No such file"):
        load_policies(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicyError, match="empty: no policy files"):
        load_policies(tmp_path / "empty")


# --- assess ----------------------------------------------------------------------------


def test_no_evidence_is_inconclusive_never_healthy(policy) -> None:  # type: ignore[no-untyped-def]
    v = assess(policy, Evidence("v2", now=T0))
    assert v.status == "inconclusive"
    assert "no metric windows" in v.reason


def test_stale_evidence_is_inconclusive(policy) -> None:  # type: ignore[no-untyped-def]
    windows = [window(0, "v1"), window(0)]
    fresh = assess(policy, Evidence("v2", at(0), windows[1:], windows[:1]))
    assert fresh.status == "healthy", fresh.reason
    stale = assess(policy, Evidence("v2", at(0) + timedelta(seconds=121), windows[1:], windows[:1]))
    assert stale.status == "inconclusive"
    assert "stale" in stale.reason


def test_too_few_samples_is_inconclusive(policy) -> None:  # type: ignore[no-untyped-def]
    v = assess(policy, Evidence("v2", at(0), [window(0, n=49)], [window(0, "v1")]))
    assert v.status == "inconclusive"
    assert "49 samples" in v.reason


def test_missing_metric_is_an_error(policy) -> None:  # type: ignore[no-untyped-def]
    w = window(0)
    broken = w.model_copy(update={"metrics": {"accuracy": 0.9}})
    v = assess(policy, Evidence("v2", at(0), [broken], [window(0, "v1")]))
    assert v.status == "error"
    assert "'latency_p95_ms' missing" in v.reason


def test_error_rate_breach_and_hysteresis(policy) -> None:  # type: ignore[no-untyped-def]
    base = [window(i, "v1") for i in range(5)]
    # 2% errors: breach; 0.8% is under the threshold but above threshold-hysteresis
    # (0.6%): still breaching; 0.5% clears.
    seq = [window(0, errors=2)]
    v = assess(policy, Evidence("v2", at(0), seq, base))
    assert v.status == "breach" and v.breaches[0].name == "errors"
    assert v.breaches[0].value == pytest.approx(0.02)
    hover = [*seq, window(1, errors=1, n=125)]  # 0.8%
    assert assess(policy, Evidence("v2", at(1), hover, base)).status == "breach"
    cleared = [*hover, window(2, errors=1, n=200)]  # 0.5%
    v = assess(policy, Evidence("v2", at(2), cleared, base))
    assert v.status == "healthy", v.reason


def test_consecutive_windows_needed_for_accuracy_drop(policy) -> None:  # type: ignore[no-untyped-def]
    base = [window(i, "v1", acc=0.90) for i in range(3)]
    one = [window(0, acc=0.85)]  # 5.6% relative drop, once
    v = assess(policy, Evidence("v2", at(0), one, base))
    assert v.status == "inconclusive"
    assert "pending breach" in v.reason
    two = [*one, window(1, acc=0.86)]
    v = assess(policy, Evidence("v2", at(1), two, base))
    assert v.status == "breach"
    assert v.breaches[0].value == pytest.approx((0.90 - 0.86) / 0.90 * 100)
    # a small drop (1.1%) is healthy
    ok = [window(0, acc=0.89)]
    assert assess(policy, Evidence("v2", at(0), ok, base)).status == "healthy"


def test_for_seconds_requires_a_span() -> None:
    p = parse_policies(
        "models: {m: {guardrails: [{name: l, kind: latency, threshold: 500, min_samples: 1,"
        " for_seconds: 25}]}}"
    )["m"]
    slow = [window(i, p95=900) for i in range(3)]
    assert assess(p, Evidence("v2", at(1), slow[:2])).status == "inconclusive"  # 20 s
    assert assess(p, Evidence("v2", at(2), slow)).status == "breach"  # 30 s


def test_accuracy_drop_without_baseline_is_inconclusive(policy) -> None:  # type: ignore[no-untyped-def]
    v = assess(policy, Evidence("v2", at(0), [window(0)], []))
    assert v.status == "inconclusive"
    assert "no baseline" in v.reason


def test_accuracy_drop_does_not_apply_to_the_champion_with_champion_baseline(policy) -> None:  # type: ignore[no-untyped-def]
    v = assess(policy, Evidence("v1", at(0), [window(0, "v1", acc=0.5)], is_champion=True))
    assert v.status == "healthy"
    assert {r.name for r in v.results} == {"errors", "latency"}


def test_drift_guardrail() -> None:
    p = parse_policies(
        "models: {m: {guardrails: [{name: d, kind: data_drift, min_severity: critical}]}}"
    )["m"]
    assert assess(p, Evidence("v1", at(0))).status == "inconclusive"
    calm = [drift(0, Severity.NONE, detected=False)]
    assert assess(p, Evidence("v1", at(0), drift=calm)).status == "healthy"
    high = [*calm, drift(1, Severity.HIGH)]
    assert assess(p, Evidence("v1", at(1), drift=high)).status == "healthy"
    critical = [*high, drift(2, Severity.CRITICAL)]
    v = assess(p, Evidence("v1", at(2), drift=critical))
    assert v.status == "breach"
    assert v.decisive_event_id == "d-2"
    # old signals age out: nothing recent is inconclusive again
    assert assess(p, Evidence("v1", at(2) + timedelta(hours=1), drift=critical)).status == (
        "inconclusive"
    )
    optional = parse_policies(
        "models: {m: {guardrails: [{name: d, kind: concept_drift, required: false}]}}"
    )["m"]
    assert assess(optional, Evidence("v1", at(0))).status == "healthy"


def test_breach_outranks_error_and_inconclusive(policy) -> None:  # type: ignore[no-untyped-def]
    w = window(0, errors=5).model_copy(update={"metrics": {"accuracy": 0.9}})
    v = assess(policy, Evidence("v2", at(0), [w], []))
    assert v.status == "breach"
    statuses = {r.name: r.status for r in v.results}
    assert statuses == {"errors": "breach", "latency": "error", "accuracy": "inconclusive"}
    assert all(set(e) >= {"guardrail", "status", "value"} for e in v.evidence())
