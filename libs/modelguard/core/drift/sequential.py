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

The bounds are conservative (measured rates are far below ``alpha``; see
``benchmarks/bench_drift.py``). After an alarm a detector restarts from scratch, as
river's detectors do. Updates are vectorised over a batch (``update_many``); ``update``
takes one value with river's interface (``drift_detected`` after each update). Their
state is a small JSON value (``state_dict`` / ``load_state``), so a worker checkpoints
it and a restart continues exactly where it stopped.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import chdtri

from modelguard.core.drift import stats
from modelguard.core.drift.reference import CategoricalProfile, NumericProfile

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Alarm:
    """A detector fired after the ``index``-th value of the batch (0-based).

    ``position`` is the detector's own count of values at the alarm (restarts included),
    independent of how the stream was cut into batches (-1 when unknown); ``histogram``
    the window's counts per bucket at the alarm (sliding-window tests only)."""

    index: int
    test: str
    statistic: float
    threshold: float
    position: int = -1
    histogram: tuple[int, ...] = ()


class _SlidingHistogram:
    """Histogram of the last ``window`` bins, advanced a batch at a time; reports the
    histogram at every check point (every ``stride`` events, window full)."""

    def __init__(self, n_bins: int, window: int, stride: int) -> None:
        self.n_bins, self.window, self.stride = n_bins, window, stride
        self.buf: IntArray = np.empty(0, dtype=np.intp)
        self.counts = np.zeros(n_bins, dtype=np.int64)
        self.seen = 0

    def scan(self, bins: IntArray) -> tuple[IntArray, npt.NDArray[np.int64]]:
        """(positions in ``bins`` after which a check happens, histograms there)."""
        b, k, w0 = bins.size, self.n_bins, self.buf.size
        if b == 0:
            return np.empty(0, dtype=np.intp), np.empty((0, k), dtype=np.int64)
        seq = np.concatenate([self.buf, bins])
        j = np.arange(b)
        g = self.seen + j
        seg = g // self.stride - self.seen // self.stride
        nseg = int(seg[-1]) + 1
        add = np.bincount(seg * k + bins, minlength=nseg * k)
        rem_idx = w0 + j - self.window
        m = rem_idx >= 0
        rem = np.bincount(seg[m] * k + seq[rem_idx[m]], minlength=nseg * k)
        hist = self.counts + np.cumsum((add - rem).reshape(nseg, k), axis=0)
        last = np.searchsorted(seg, np.arange(nseg), side="right") - 1
        ok = ((g[last] + 1) % self.stride == 0) & (w0 + last + 1 >= self.window)
        return last[ok], hist[ok]

    def commit(self, bins: IntArray) -> None:
        """Append ``bins`` for good (no alarm among them)."""
        self.buf = np.concatenate([self.buf, bins])[-self.window :]
        self.counts = np.bincount(self.buf, minlength=self.n_bins).astype(np.int64)
        self.seen += bins.size

    def reset_after(self, consumed: int) -> None:
        self.buf = np.empty(0, dtype=np.intp)
        self.counts[:] = 0
        self.seen += consumed

    def state_dict(self) -> dict[str, Any]:
        return {"buf": self.buf.tolist(), "seen": self.seen}

    def load_state(self, d: Mapping[str, Any]) -> None:
        self.buf = np.asarray(d["buf"], dtype=np.intp)[-self.window :]
        if self.buf.size and (self.buf.min() < 0 or self.buf.max() >= self.n_bins):
            raise ValueError("sliding window state does not fit the reference's bins")
        self.counts = np.bincount(self.buf, minlength=self.n_bins).astype(np.int64)
        self.seen = int(d["seen"])


def _union_alpha(alpha: float, horizon: int, stride: int) -> float:
    return alpha / max(1.0, horizon / stride)


class _WindowTest(ABC):
    """Shared driver of the sliding-window tests: scan, find the first alarm, restart."""

    test_name = "window"

    def __init__(self, n_bins: int, window: int, stride: int, threshold: float) -> None:
        self._hist = _SlidingHistogram(n_bins, window, stride)
        self.window = window
        self.threshold = threshold
        self.statistic = 0.0
        self.drift_detected = False
        self._pending: list[int] = []

    @abstractmethod
    def _statistics(self, hist: npt.NDArray[np.int64]) -> FloatArray:
        """The test statistic of every window position in ``hist`` (one per row)."""

    def _large_enough(self, hist: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Which significant window positions are also a practical change (all here)."""
        return np.ones(hist.shape[0], dtype=bool)

    def update_bins(self, bins: IntArray) -> list[Alarm]:
        alarms: list[Alarm] = []
        offset = 0
        while offset < bins.size:
            part = bins[offset:]
            pos, hist = self._hist.scan(part)
            if pos.size:
                stats = self._statistics(hist)
                self.statistic = float(stats[-1])
                hit = np.flatnonzero(stats > self.threshold)
                if hit.size:  # significant *and* large enough: a trivial change slides on
                    hit = hit[self._large_enough(hist[hit])]
                if hit.size:
                    p = int(pos[hit[0]])
                    self.statistic = float(stats[hit[0]])
                    alarms.append(
                        Alarm(
                            offset + p,
                            self.test_name,
                            self.statistic,
                            self.threshold,
                            self._hist.seen + p + 1,
                            tuple(int(v) for v in hist[hit[0]]),
                        )
                    )
                    self._hist.reset_after(p + 1)
                    offset += p + 1
                    continue
            self._hist.commit(part)
            break
        self.drift_detected = bool(alarms) and alarms[-1].index == bins.size - 1
        return alarms

    def window_bins(self) -> IntArray:
        return self._hist.buf

    def state_dict(self) -> dict[str, Any]:
        """The detector's state as a JSON value (the thresholds come from the reference
        and the settings, which the restoring side rebuilds)."""
        return {
            "hist": self._hist.state_dict(),
            "pending": list(self._pending),
            "statistic": self.statistic,
            "drift_detected": self.drift_detected,
        }

    def load_state(self, d: Mapping[str, Any]) -> None:
        self._hist.load_state(d["hist"])
        self._pending = [int(b) for b in d["pending"]]
        self.statistic = float(d["statistic"])
        self.drift_detected = bool(d["drift_detected"])

    @property
    def seen(self) -> int:
        """Values counted so far (restarts included)."""
        return self._hist.seen


class SlidingWindowKS(_WindowTest):
    """KS test of the last ``window`` values against a numeric reference."""

    test_name = "ks_window"

    def __init__(
        self,
        reference: NumericProfile,
        *,
        window: int = 300,
        stride: int = 8,
        alpha: float = 0.01,
        horizon: int = 10_000,
    ) -> None:
        n_eff = window * reference.n / (window + reference.n)
        a = _union_alpha(alpha, horizon, stride)
        threshold = math.sqrt(math.log(2.0 / a) / (2.0 * n_eff))
        super().__init__(reference.n_bins, window, stride, threshold)
        self.reference = reference
        self._ref_cdf = np.cumsum(reference.probabilities)[:-1]
        self._edges = np.asarray(reference.edges)
        self._edge_list = list(reference.edges)

    def _statistics(self, hist: npt.NDArray[np.int64]) -> FloatArray:
        cdf = np.cumsum(hist, axis=1)[:, :-1] / self.window
        return np.asarray(np.max(np.abs(cdf - self._ref_cdf), axis=1), dtype=np.float64)

    def update_many(self, values: npt.ArrayLike) -> list[Alarm]:
        return self.update_bins(np.searchsorted(self._edges, np.asarray(values), side="right"))

    def update(self, x: float) -> bool:
        """River-style single update. Checks happen every ``stride`` values, so values
        are buffered until the next check: the verdict is identical to ``update_many``."""
        self._pending.append(bisect.bisect_right(self._edge_list, x))
        if (self._hist.seen + len(self._pending)) % self._hist.stride == 0:
            bins = np.asarray(self._pending, dtype=np.intp)
            self._pending.clear()
            self.update_bins(bins)
        else:
            self.drift_detected = False
        return self.drift_detected


def pooled_categories(reference: CategoricalProfile, window: int) -> tuple[IntArray, FloatArray]:
    """Map reference category index (plus "other" last) to a test bucket so every bucket
    expects >= 5 values in a window; returns (bucket per category, bucket shares)."""
    p = np.asarray(reference.counts, dtype=np.float64) / max(1, sum(reference.counts))
    keep = p * window >= 5.0
    bucket = np.zeros(p.size, dtype=np.intp)
    n_keep = int(keep.sum())
    bucket[keep] = np.arange(n_keep)
    bucket[~keep] = n_keep
    shares = np.bincount(bucket, weights=p)
    if shares[-1] <= 0:  # nothing pooled
        shares = shares[:-1]
    elif shares[-1] * window < 5.0 and n_keep > 1:
        # a too-small pool joins the rarest kept bucket
        rarest = int(np.argmin(shares[:-1]))
        bucket[bucket == n_keep] = rarest
        shares = np.bincount(bucket, weights=p, minlength=n_keep)[:n_keep]
    return bucket, np.asarray(shares, dtype=np.float64)


class SlidingWindowChi2(_WindowTest):
    """Chi-square test of the last ``window`` categories against the reference shares.
    Values outside the reference (unseen) are not part of it: they are a data-quality
    signal of their own."""

    test_name = "chi2_window"

    def __init__(
        self,
        reference: CategoricalProfile,
        *,
        window: int = 500,
        stride: int = 8,
        alpha: float = 0.05,
        horizon: int = 10_000,
        min_psi: float = 0.0,
    ) -> None:
        bucket, shares = pooled_categories(reference, window)
        df = max(1, shares.size - 1)
        # the reference shares are estimated from ``reference.n`` values, not exact: the
        # goodness-of-fit statistic of the window is about (1 + window / n) times the
        # two-sample (homogeneity) statistic, whose chi-square tail gives the threshold
        inflation = 1.0 + window / max(1, reference.n)
        threshold = float(chdtri(df, _union_alpha(alpha, horizon, stride))) * inflation
        super().__init__(max(1, shares.size), window, stride, threshold)
        self.reference = reference
        self.bucket = bucket
        self.shares = shares
        #: an alarm needs the window's PSI to reach this too; below it the window keeps
        #: sliding (no restart), so a change still growing in the window is reported as
        #: soon as it is large enough instead of being lost with a restart
        self.min_psi = min_psi
        self._expected = shares * window
        self._index = reference.index

    def window_psi(self, histogram: Sequence[int]) -> float:
        """PSI of a window's bucket counts against the reference shares: the practical
        size of a change, on the same scale as the window tests' PSI."""
        h = np.asarray(histogram, dtype=np.float64)
        if h.size != self.shares.size or h.sum() <= 0:
            return 0.0
        return stats.psi(self.shares, h)

    def _large_enough(self, hist: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        if self.min_psi <= 0.0:
            return np.ones(hist.shape[0], dtype=bool)
        return np.asarray([self.window_psi(h) >= self.min_psi for h in hist], dtype=bool)

    def _statistics(self, hist: npt.NDArray[np.int64]) -> FloatArray:
        if self._expected.size < 2:
            return np.zeros(hist.shape[0])
        return np.asarray(
            np.sum((hist - self._expected) ** 2 / self._expected, axis=1), dtype=np.float64
        )

    def bins_of(self, values: Sequence[str]) -> IntArray:
        """Bucket per value; -1 for unseen values (to be dropped by the caller)."""
        other = len(self.reference.categories)
        has_other = self.reference.has_other
        out = np.empty(len(values), dtype=np.intp)
        for i, v in enumerate(values):
            idx = self._index.get(v, other if has_other else -1)
            out[i] = self.bucket[idx] if idx >= 0 else -1
        return out

    def update_many(self, values: Sequence[str]) -> list[Alarm]:
        bins = self.bins_of(values)
        keep = np.flatnonzero(bins >= 0)
        alarms = self.update_bins(bins[keep])
        return [dataclasses.replace(a, index=int(keep[a.index])) for a in alarms]

    def update(self, x: str) -> bool:
        self.update_many([x])
        return self.drift_detected


class LLRCusum:
    """Four one-sided CUSUMs of log-likelihood ratios on reference normal scores.

    Alternatives: mean +/- ``mean_shift`` (in reference sigma) and standard deviation
    times ``scale_ratio`` or divided by it. Threshold ``h = ln(horizon * 4 / alpha)``.
    """

    NAMES = ("cusum_mean_up", "cusum_mean_down", "cusum_scale_up", "cusum_scale_down")

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
        self._edges = np.asarray(reference.edges)
        z = reference.normal_scores()
        d = mean_shift
        rows = [d * z - d * d / 2, -d * z - d * d / 2]
        for r in (scale_ratio**2, 1.0 / scale_ratio**2):
            rows.append(0.5 * (1.0 - 1.0 / r) * z * z - 0.5 * math.log(r))
        self.table: FloatArray = np.vstack(rows)
        self.threshold = math.log(horizon * len(rows) / alpha)
        self.state: FloatArray = np.zeros(len(rows))
        self.drift_detected = False
        self.statistic = 0.0

    def update_bins(self, bins: IntArray) -> list[Alarm]:
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
        self.drift_detected = bool(alarms) and alarms[-1].index == bins.size - 1
        return alarms

    def update_many(self, values: npt.ArrayLike) -> list[Alarm]:
        return self.update_bins(np.searchsorted(self._edges, np.asarray(values), side="right"))

    def state_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.tolist(),
            "statistic": self.statistic,
            "drift_detected": self.drift_detected,
        }

    def load_state(self, d: Mapping[str, Any]) -> None:
        state = np.asarray(d["state"], dtype=np.float64)
        if state.shape != self.state.shape:
            raise ValueError("CUSUM state does not match the detector")
        self.state = state
        self.statistic = float(d["statistic"])
        self.drift_detected = bool(d["drift_detected"])

    def update(self, x: float) -> bool:
        b = int(np.searchsorted(self._edges, x, side="right"))
        s = np.maximum(self.state + self.table[:, b], 0.0)
        self.statistic = float(s.max())
        self.drift_detected = self.statistic > self.threshold
        self.state = np.zeros_like(s) if self.drift_detected else s
        return self.drift_detected


class NumericDriftDetector:
    """The default per-feature numeric detector: sliding-window KS (shape) plus the
    likelihood-ratio CUSUMs (fast on location and scale shifts).

    ``alpha`` is the false-alarm probability within ``horizon`` events for the whole
    detector; a fifth goes to the KS window, the rest to the CUSUMs.
    """

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
        self.drift_detected = False

    def bins(self, values: npt.ArrayLike) -> IntArray:
        return np.searchsorted(self._edges, np.asarray(values), side="right")

    def update_bins(self, bins: IntArray) -> list[Alarm]:
        alarms = sorted(
            self.ks.update_bins(bins) + self.cusum.update_bins(bins), key=lambda a: a.index
        )
        self.drift_detected = bool(alarms) and alarms[-1].index == bins.size - 1
        return alarms

    def update_many(self, values: npt.ArrayLike) -> list[Alarm]:
        return self.update_bins(self.bins(values))

    def update(self, x: float) -> bool:
        self.drift_detected = self.ks.update(x) | self.cusum.update(x)
        return self.drift_detected

    def state_dict(self) -> dict[str, Any]:
        return {
            "ks": self.ks.state_dict(),
            "cusum": self.cusum.state_dict(),
            "drift_detected": self.drift_detected,
        }

    def load_state(self, d: Mapping[str, Any]) -> None:
        self.ks.load_state(d["ks"])
        self.cusum.load_state(d["cusum"])
        self.drift_detected = bool(d["drift_detected"])

    def recent_shift(self) -> tuple[float, float]:
        """(mean of normal scores, their standard deviation) over the KS window: the
        size of a location / scale change in reference-sigma units."""
        bins = self.ks.window_bins()
        if bins.size < 2:
            return 0.0, 1.0
        z = self._z[bins]
        return float(z.mean()), float(z.std())
