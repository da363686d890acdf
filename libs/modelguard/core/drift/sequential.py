"""Sequential (per-event) drift detectors with a false-alarm rate fixed by construction.

Every detector first maps a value to its bin on the reference histogram, so what it
sees is distribution-free: under "no drift" the bins are drawn with the reference bin
probabilities whatever the feature's distribution. Thresholds follow from a target
false-alarm probability ``alpha`` within ``horizon`` events:

* :class:`SlidingWindowKS` — KS distance between the last ``window`` events and the
  reference CDF, checked every ``stride`` events. Threshold from the
  Dvoretzky-Kiefer-Wolfowitz inequality ``P(D > e) <= 2 exp(-2 n e^2)`` (``n`` the
  effective size of window and reference) with a union bound over the
  ``horizon / stride`` checks: ``P(false alarm within horizon) <= alpha``.
* :class:`SlidingWindowChi2` — Pearson chi-square of the last ``window`` categories
  against the reference shares (rare categories pooled so every expected count is >= 5),
  threshold from the chi-square tail with the same union bound.
* :class:`LLRCusum` — CUSUMs of log-likelihood ratios on normal scores (the probit of
  the reference CDF, ~N(0, 1) under no drift): mean up/down by ``mean_shift`` sigma and
  scale up/down by ``scale_ratio``. Each likelihood ratio is a martingale under no drift,
  so by Ville's inequality and a union bound over start points
  ``P(false alarm within horizon) <= horizon * exp(-h)``; ``h`` is set from ``alpha``.

The window tests live in :mod:`~modelguard.core.drift.sliding_window`, the CUSUMs in
:mod:`~modelguard.core.drift.cusum`; this module holds the default numeric detector that
combines them. The bounds are conservative (measured rates are far below ``alpha``; see
``benchmarks/bench_drift.py``). After an alarm a detector restarts from scratch, as
river's detectors do. Every detector follows the detector contract
(:class:`~modelguard.core.drift.detector.Detector`): ``update(x)`` and the vectorised
``update_many(xs)`` return the detector, ``drift_detected`` (read-only) says whether the
last value raised an alarm and ``alarms`` lists the :class:`Alarm` rows of the last
update. ``to_dict`` / ``from_dict`` give the whole detector (parameters, reference and
state) as strict JSON; ``state_dict`` / ``load_state`` only its changing state, which is
what the processor's checkpoint stores (it rebuilds the detectors from the reference and
the settings), so a restart continues exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from modelguard.core.drift.cusum import CusumScan, LLRCusum
from modelguard.core.drift.detector import Alarm, ProfiledDetector
from modelguard.core.drift.reference import NumericProfile
from modelguard.core.drift.sliding_window import (
    QuietScan,
    SlidingWindowChi2,
    SlidingWindowKS,
    pooled_categories,
)

__all__ = [
    "Alarm",
    "LLRCusum",
    "NumericDriftDetector",
    "NumericScan",
    "Scanned",
    "SlidingWindowChi2",
    "SlidingWindowKS",
    "pooled_categories",
]

IntArray = npt.NDArray[np.intp]


class NumericDriftDetector(ProfiledDetector):
    """The default per-feature numeric detector: sliding-window KS (shape) plus the
    likelihood-ratio CUSUMs (fast on location and scale shifts).

    ``alpha`` is the false-alarm probability within ``horizon`` events for the whole
    detector; a fifth goes to the KS window (``window``, ``stride``), the rest to the
    CUSUMs (``mean_shift``, ``scale_ratio``). See :class:`SlidingWindowKS` and
    :class:`LLRCusum`.

    >>> import numpy as np
    >>> from modelguard.core.drift.reference import numeric_profile
    >>> rng = np.random.default_rng(0)
    >>> det = NumericDriftDetector(numeric_profile(list(rng.normal(size=5_000))))
    >>> det.update_many(rng.normal(size=2_000)).alarms
    []
    >>> [a.test for a in det.update_many(rng.normal(0.0, 2.0, size=500)).alarms][:1]
    ['cusum_scale_up']
    """

    profile_type = NumericProfile

    def __init__(
        self,
        reference: NumericProfile,
        *,
        alpha: float = 0.05,
        horizon: int = 10_000,
        window: int = 300,
        stride: int = 8,
        mean_shift: float = 0.5,
        scale_ratio: float = 1.5,
    ) -> None:
        self.reference = reference
        self.params: dict[str, Any] = {
            "alpha": alpha,
            "horizon": horizon,
            "window": window,
            "stride": stride,
            "mean_shift": mean_shift,
            "scale_ratio": scale_ratio,
        }
        self._edges = np.asarray(reference.edges)
        self.ks = SlidingWindowKS(
            reference, window=window, stride=stride, alpha=alpha / 5, horizon=horizon
        )
        self.cusum = LLRCusum(
            reference,
            mean_shift=mean_shift,
            scale_ratio=scale_ratio,
            alpha=alpha * 4 / 5,
            horizon=horizon,
        )
        self._z = reference.normal_scores()
        self._clear_alarms()

    def bins(self, values: npt.ArrayLike) -> IntArray:
        return np.searchsorted(self._edges, np.asarray(values), side="right")

    def update_many(
        self, xs: npt.ArrayLike, bins: IntArray | None = None, *, scanned: Scanned | None = None
    ) -> Self:
        """Feed values in order (vectorised); ``alarms`` lists the alarms among them.
        ``bins``: their reference bins (:meth:`bins`) when the caller has them already;
        ``scanned``: this detector's part of a :class:`NumericScan` of those bins."""
        self._update_bins(self.bins(xs) if bins is None else bins, scanned)
        return self

    def _update_bins(self, bins: IntArray, scanned: Scanned | None = None) -> list[Alarm]:
        """Feed values by their reference bins (what :meth:`update_many` does)."""
        if scanned is not None and scanned.scan.ks.quiet[scanned.index]:
            scanned.scan.ks.commit(scanned.index)
            ks: list[Alarm] = []
        else:
            ks = self.ks._update_bins(bins)
        if scanned is not None and scanned.scan.cusum.quiet[scanned.index]:
            scanned.scan.cusum.commit(scanned.index)
            cusum: list[Alarm] = []
        else:
            cusum = self.cusum._update_bins(bins)
        alarms = sorted(ks + cusum, key=lambda a: a.index)
        return self._report(alarms, bins.size)

    def update(self, x: float) -> Self:
        """Feed one value."""
        ks, cusum = self.ks.update(x), self.cusum.update(x)
        self._drift_detected = ks.drift_detected | cusum.drift_detected
        self._alarms = ks.alarms + cusum.alarms
        return self

    def state_dict(self) -> dict[str, Any]:
        """The changing state as a JSON value (what a checkpoint stores)."""
        return {
            "ks": self.ks.state_dict(),
            "cusum": self.cusum.state_dict(),
            "drift_detected": self._drift_detected,
        }

    def load_state(self, d: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (same reference and parameters)."""
        self.ks.load_state(d["ks"])
        self.cusum.load_state(d["cusum"])
        self._drift_detected = bool(d["drift_detected"])

    def constructor_params(self) -> dict[str, Any]:
        return dict(self.params)

    def recent_shift(self) -> tuple[float, float]:
        """(mean of normal scores, their standard deviation) over the KS window: the
        size of a location / scale change in reference-sigma units."""
        return self.shift(self.ks.window_bins())

    def shift(self, bins: IntArray) -> tuple[float, float]:
        """(mean of normal scores, their standard deviation) of ``bins`` (reference bins,
        e.g. :meth:`window_at`): a location / scale change in reference-sigma units."""
        if bins.size < 2:
            return 0.0, 1.0
        z = self._z[bins]
        return float(z.mean()), float(z.std())

    def window_at(
        self, before: IntArray, xs: npt.ArrayLike, alarms: list[Alarm], index: int
    ) -> IntArray:
        """The KS window's bins right after value ``index`` of the batch ``xs`` (the
        values up to it, before any restart it causes), whatever the batching: ``before``
        is :meth:`SlidingWindowKS.window_bins` before the batch and ``alarms`` the batch's
        alarms (a KS alarm earlier in the batch restarted the window after it)."""
        bins = self.bins(np.asarray(xs)[: index + 1])
        restarts = [a.index for a in alarms if a.test == self.ks.test_name and a.index < index]
        seq = bins[restarts[-1] + 1 :] if restarts else np.concatenate([before, bins])
        return seq[-self.ks.window :]


class NumericScan:
    """One batch of several :class:`NumericDriftDetector` (a model's numeric features:
    ``bins[i]`` for detector i, equal lengths, equal KS window and stride) scanned
    together: a few numpy calls for all of them instead of a few dozen each. It says
    which parts raise no alarm (:class:`~modelguard.core.drift.sliding_window.QuietScan`,
    :class:`~modelguard.core.drift.cusum.CusumScan`); a detector fed
    ``scanned=scan.part(i)`` takes those from the scan and runs the rest itself, so it
    ends exactly as its own :meth:`NumericDriftDetector.update_many` would leave it.
    Built before any of them is fed (it reads their state)."""

    def __init__(self, detectors: Sequence[NumericDriftDetector], bins: IntArray) -> None:
        self.ks = QuietScan([d.ks for d in detectors], bins)
        self.cusum = CusumScan([d.cusum for d in detectors], bins)

    def part(self, i: int) -> Scanned:
        return Scanned(self, i)


@dataclass(frozen=True)
class Scanned:
    """Detector ``index``'s part of a :class:`NumericScan`."""

    scan: NumericScan
    index: int
