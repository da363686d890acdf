"""Severity from a practical effect size, and the recommended action per severity.

A test flags drift only when it is significant *and* its effect reaches LOW: with huge
samples a trivial shift is significant but stays NONE. Thresholds (lower bounds of
LOW, MEDIUM, HIGH, CRITICAL):

========================  =====  ======  =====  ========
effect                     LOW   MEDIUM  HIGH   CRITICAL
========================  =====  ======  =====  ========
PSI                        0.1    0.2     0.5    1.0
Wasserstein / ref sigma    0.1    0.25    0.5    1.0
mean shift (sigma)         0.1    0.25    0.5    1.0
abs log scale ratio        0.1    0.2     0.4    0.7
KS distance                0.05   0.1     0.2    0.4
rate (missing, unseen,     0.02   0.05    0.2    0.5
out-of-range)
type-error rate            0.001  0.01    0.05   0.2
error-rate increase        0.02   0.05    0.1    0.2
confidence drop            0.05   0.1     0.2    0.3
drifted-feature share      >0.2 MEDIUM, >0.5 HIGH, >=0.8 CRITICAL
========================  =====  ======  =====  ========
"""

from __future__ import annotations

from modelguard.contracts.common import Severity

SCALES: dict[str, tuple[float, float, float, float]] = {
    "psi": (0.1, 0.2, 0.5, 1.0),
    "wasserstein": (0.1, 0.25, 0.5, 1.0),
    "mean_shift": (0.1, 0.25, 0.5, 1.0),
    "log_scale": (0.1, 0.2, 0.4, 0.7),
    "ks": (0.05, 0.1, 0.2, 0.4),
    "rate": (0.02, 0.05, 0.2, 0.5),
    "type_error_rate": (0.001, 0.01, 0.05, 0.2),
    "error_rate": (0.02, 0.05, 0.1, 0.2),
    "confidence_drop": (0.05, 0.1, 0.2, 0.3),
}

ACTIONS: dict[Severity, str] = {
    Severity.NONE: "no action",
    Severity.LOW: "keep watching; note the shift in the model's log",
    Severity.MEDIUM: "investigate the feature's upstream source; review retraining",
    Severity.HIGH: "investigate now; retrain or shift traffic to a safer version",
    Severity.CRITICAL: "roll back or stop traffic to this version; page the model owner",
}


def from_effect(scale: str, effect: float) -> Severity:
    """Severity of an effect of size ``effect`` (absolute value) on ``scale``."""
    low, medium, high, critical = SCALES[scale]
    e = abs(effect)
    if e >= critical:
        return Severity.CRITICAL
    if e >= high:
        return Severity.HIGH
    if e >= medium:
        return Severity.MEDIUM
    if e >= low:
        return Severity.LOW
    return Severity.NONE


def from_share(share: float, threshold: float = 0.2) -> Severity:
    """Severity of a dataset whose ``share`` of features drifted (alert above
    ``threshold``)."""
    if share >= 0.8:
        return Severity.CRITICAL
    if share > 0.5:
        return Severity.HIGH
    if share > threshold:
        return Severity.MEDIUM
    return Severity.NONE
