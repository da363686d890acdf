"""Likelihood-ratio CUSUMs on reference normal scores (:class:`LLRCusum`): fast on
location and scale shifts. Threshold: see :mod:`modelguard.core.drift.sequential`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from modelguard.core.drift.detector import Alarm, ProfiledDetector
from modelguard.core.drift.reference import NumericProfile

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]
#: the CUSUM increments' grid (see :class:`LLRCusum`)
_GRID = float(2**24)


class LLRCusum(ProfiledDetector):
    """Four one-sided CUSUMs of log-likelihood ratios on reference normal scores.

    Alternatives: mean +/- ``mean_shift`` (in reference sigma) and standard deviation
    times ``scale_ratio`` or divided by it. Threshold ``h = ln(horizon * 4 / alpha)``:
    ``alpha`` is the false-alarm probability within ``horizon`` values.

    >>> import numpy as np
    >>> from modelguard.core.drift.reference import numeric_profile
    >>> rng = np.random.default_rng(0)
    >>> det = LLRCusum(numeric_profile(list(rng.normal(size=5_000))))
    >>> det.update_many(rng.normal(size=2_000)).alarms
    []
    >>> det.update_many(rng.normal(1.0, 1.0, size=1_000)).alarms[0].test
    'cusum_mean_up'
    """

    NAMES = ("cusum_mean_up", "cusum_mean_down", "cusum_scale_up", "cusum_scale_down")

    profile_type = NumericProfile

    def __init__(
        self,
        reference: NumericProfile,
        *,
        mean_shift: float = 0.5,
        scale_ratio: float = 1.5,
        alpha: float = 0.04,
        horizon: int = 10_000,
    ) -> None:
        self.reference = reference
        self.mean_shift, self.scale_ratio = mean_shift, scale_ratio
        self.alpha, self.horizon = alpha, horizon
        self._edges = np.asarray(reference.edges)
        z = reference.normal_scores()
        d = mean_shift
        rows = [d * z - d * d / 2, -d * z - d * d / 2]
        for r in (scale_ratio**2, 1.0 / scale_ratio**2):
            rows.append(0.5 * (1.0 - 1.0 / r) * z * z - 0.5 * math.log(r))
        # the log-likelihood ratios on a grid of 2**-24 (a change of at most 3e-8 per
        # value): every partial sum is then exact in float64 (below 2**29 in size, i.e.
        # batches of up to tens of millions of values), so ``update_many``'s cumulative
        # sums equal the one-value-at-a-time recursion bit for bit and an alarm's
        # statistic is the same however the stream was cut into batches (issue 11 #9)
        self.table: FloatArray = np.round(np.vstack(rows) * _GRID) / _GRID
        self.threshold = math.log(horizon * len(rows) / alpha)
        self.state: FloatArray = np.zeros(len(rows))
        self._clear_alarms()
        self.statistic = 0.0

    def _update_bins(self, bins: IntArray) -> list[Alarm]:
        alarms: list[Alarm] = []
        offset = 0
        while offset < bins.size:
            inc = self.table[:, bins[offset:]]
            c = np.cumsum(inc, axis=1)
            s = c - np.minimum(np.minimum.accumulate(c, axis=1), -self.state[:, None])
            over = s > self.threshold
            if over.any():
                first = np.where(over.any(axis=0))[0][0]
                row = int(np.argmax(s[:, first]))
                self.statistic = float(s[row, first])
                alarms.append(
                    Alarm(offset + int(first), self.NAMES[row], self.statistic, self.threshold)
                )
                self.state = np.zeros_like(self.state)
                offset += int(first) + 1
                continue
            self.state = s[:, -1].copy()
            self.statistic = float(self.state.max())
            break
        return self._report(alarms, bins.size)

    def update_many(self, xs: npt.ArrayLike) -> Self:
        """Feed values in order (vectorised); ``alarms`` lists the alarms among them."""
        self._update_bins(np.searchsorted(self._edges, np.asarray(xs), side="right"))
        return self

    def update(self, x: float) -> Self:
        """Feed one value (the scalar form of :meth:`update_many`)."""
        b = int(np.searchsorted(self._edges, x, side="right"))
        s = np.maximum(self.state + self.table[:, b], 0.0)
        self.statistic = float(s.max())
        self._drift_detected = self.statistic > self.threshold
        self._alarms = (
            [Alarm(0, self.NAMES[int(np.argmax(s))], self.statistic, self.threshold)]
            if self._drift_detected
            else []
        )
        self.state = np.zeros_like(s) if self._drift_detected else s
        return self

    def state_dict(self) -> dict[str, Any]:
        """The changing state as a JSON value (what a checkpoint stores)."""
        return {
            "state": self.state.tolist(),
            "statistic": self.statistic,
            "drift_detected": self._drift_detected,
        }

    def load_state(self, d: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (same reference and parameters)."""
        state = np.asarray(d["state"], dtype=np.float64)
        if state.shape != self.state.shape:
            raise ValueError("CUSUM state does not match the detector")
        self.state = state
        self.statistic = float(d["statistic"])
        self._drift_detected = bool(d["drift_detected"])


class CusumScan:
    """Several :class:`LLRCusum` (a model's numeric features) over one batch of ``n``
    bins each, in one stacked pass of the detectors' own formula (the cumulative sums
    run along each feature's values, so every float is the one the detector computes
    alone). ``quiet[i]``: detector i raises no alarm on its batch; :meth:`commit` then
    leaves it as :meth:`LLRCusum.update_many` would. The others are left to their own
    update (which restarts after an alarm)."""

    def __init__(self, cusums: Sequence[LLRCusum], bins: IntArray) -> None:
        f = bins.shape[0]
        rows, width = cusums[0].table.shape[0], max(cu.table.shape[1] for cu in cusums)
        table = np.zeros((f, rows, width))
        for i, cu in enumerate(cusums):
            table[i, :, : cu.table.shape[1]] = cu.table
        c = np.cumsum(np.take_along_axis(table, bins[:, None, :], axis=2), axis=2)
        state = np.stack([cu.state for cu in cusums])
        s = np.minimum.accumulate(c, axis=2)
        np.minimum(s, -state[:, :, None], out=s)
        np.subtract(c, s, out=s)
        threshold = np.asarray([cu.threshold for cu in cusums])
        self.quiet = ~np.any(s > threshold[:, None, None], axis=(1, 2))
        self._cusums = cusums
        self._end = s[:, :, -1].copy()

    def commit(self, i: int) -> None:
        """Feed detector ``i`` its bins (``quiet[i]`` must hold)."""
        cu = self._cusums[i]
        cu.state = self._end[i].copy()
        cu.statistic = float(cu.state.max())
        cu._clear_alarms()
