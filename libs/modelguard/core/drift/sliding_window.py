"""Sliding-window sequential tests on reference bins: :class:`SlidingWindowKS` (numeric)
and :class:`SlidingWindowChi2` (categorical), with their shared driver (scan a batch,
find the first alarm, restart). Thresholds: see :mod:`modelguard.core.drift.sequential`.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from scipy.special import chdtri

from modelguard.core.drift import stats
from modelguard.core.drift.detector import Alarm, ProfiledDetector
from modelguard.core.drift.reference import (
    CategoricalProfile,
    NumericProfile,
)

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]


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


class _WindowTest(ProfiledDetector):
    """Shared driver of the sliding-window tests: scan, find the first alarm, restart."""

    test_name = "window"

    def __init__(self, n_bins: int, window: int, stride: int, threshold: float) -> None:
        self._hist = _SlidingHistogram(n_bins, window, stride)
        self.window = window
        self.threshold = threshold
        self.statistic = 0.0
        self._clear_alarms()
        self._pending: list[int] = []

    @abstractmethod
    def _statistics(self, hist: npt.NDArray[np.int64]) -> FloatArray:
        """The test statistic of every window position in ``hist`` (one per row)."""

    def _large_enough(self, hist: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Which significant window positions are also a practical change (all here)."""
        return np.ones(hist.shape[0], dtype=bool)

    def _update_bins(self, bins: IntArray) -> list[Alarm]:
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
        return self._report(alarms, bins.size)

    def window_bins(self) -> IntArray:
        return self._hist.buf

    def state_dict(self) -> dict[str, Any]:
        """The detector's state as a JSON value (the thresholds come from the reference
        and the settings, which the restoring side rebuilds)."""
        return {
            "hist": self._hist.state_dict(),
            "pending": list(self._pending),
            "statistic": self.statistic,
            "drift_detected": self._drift_detected,
        }

    def load_state(self, d: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (same reference and parameters)."""
        self._hist.load_state(d["hist"])
        self._pending = [int(b) for b in d["pending"]]
        self.statistic = float(d["statistic"])
        self._drift_detected = bool(d["drift_detected"])

    @property
    def seen(self) -> int:
        """Values counted so far (restarts included)."""
        return self._hist.seen


class SlidingWindowKS(_WindowTest):
    """KS test of the last ``window`` values against a numeric reference.

    Parameters: ``reference`` the feature's reference histogram; ``window`` the values
    tested; ``stride`` values between checks; ``alpha`` the false-alarm probability
    within ``horizon`` values (DKW bound with a union bound over the checks).

    >>> import numpy as np
    >>> from modelguard.core.drift.reference import numeric_profile
    >>> rng = np.random.default_rng(0)
    >>> det = SlidingWindowKS(numeric_profile(list(rng.normal(size=5_000))))
    >>> det.update_many(rng.normal(size=2_000)).alarms
    []
    >>> det.update_many(rng.normal(1.0, 1.0, size=1_000)).alarms[0].test
    'ks_window'
    """

    test_name = "ks_window"

    profile_type = NumericProfile

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
        self.stride, self.alpha, self.horizon = stride, alpha, horizon
        self._ref_cdf = np.cumsum(reference.probabilities)[:-1]
        self._edges = np.asarray(reference.edges)
        self._edge_list = list(reference.edges)
        self._lo, self._hi = self._quiet_counts()

    def _statistics(self, hist: npt.NDArray[np.int64]) -> FloatArray:
        if not self._ref_cdf.size:  # a constant reference (one bin): no distance to see
            return np.zeros(hist.shape[0], dtype=np.float64)
        cdf = np.cumsum(hist, axis=1)[:, :-1] / self.window
        return np.asarray(np.max(np.abs(cdf - self._ref_cdf), axis=1), dtype=np.float64)

    def _quiet_counts(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Per bin but the last, the window's cumulative counts ``c`` that do not exceed
        the threshold (``lo[b] <= c <= hi[b]``), found by evaluating :meth:`_statistics`'
        own float expression at every count ``0 .. window`` (a check happens on a full
        window, so the counts are in that range). The expression is monotone in ``c``,
        so they form an interval; checked, not assumed. An empty interval is
        ``lo = window + 1, hi = -1``; a bound at 0 or ``window`` is moved out of reach."""
        w = self.window
        c = np.arange(w + 1, dtype=np.int64)[:, None]
        quiet = ~(np.abs(c / w - self._ref_cdf) > self.threshold)
        some = quiet.any(axis=0)
        lo = np.where(some, np.argmax(quiet, axis=0), w + 1).astype(np.int64)
        hi = np.where(some, w - np.argmax(quiet[::-1], axis=0), -1).astype(np.int64)
        if not np.array_equal((c >= lo) & (c <= hi), quiet):  # pragma: no cover
            raise AssertionError("the KS threshold's quiet counts are not intervals")
        # a bound at the end of the range is never crossed: put it out of reach, so the
        # slack of :meth:`_quiet_batch` measures only the bounds that can be crossed
        lo[lo == 0] = -(w + 1)
        hi[hi == w] = 2 * w + 1
        return lo, hi

    def _update_bins(self, bins: IntArray) -> list[Alarm]:
        # a few values (single updates) hold one check at most: evaluate it alone
        small = bins.size <= self.stride
        if not self._ref_cdf.size:  # one bin: every check is quiet, the plain path is cheap
            return super()._update_bins(bins)
        if self._small_batch(bins) if small else self._quiet_batch(bins):
            return self._alarms
        return super()._update_bins(bins)

    def _small_batch(self, bins: IntArray) -> bool:
        """Feed at most ``stride`` values (one check at most) if that check does not
        fire, evaluating it alone; False (nothing fed) when it fires."""
        h = self._hist
        m, w, w0 = bins.size, self.window, h.buf.size
        if m == 0:
            return False
        p = (-(h.seen + 1)) % h.stride  # the value that ends a stride
        joined = np.concatenate([h.buf, bins]) if w0 else bins
        hist = None
        if p < m and w0 + p + 1 >= w:  # a check after value p
            hist = np.bincount(joined[w0 + p + 1 - w : w0 + p + 1], minlength=h.n_bins)
            statistic = float(self._statistics(hist[None, :])[0])
            if statistic > self.threshold:
                return False
            self.statistic = statistic
        h.buf = joined[-w:]
        if hist is not None and p == m - 1:
            h.counts = hist.astype(np.int64, copy=False)
        else:
            h.counts = np.bincount(h.buf, minlength=h.n_bins).astype(np.int64)
        h.seen += m
        self._clear_alarms()
        return True

    def _quiet_batch(self, bins: IntArray) -> bool:
        """Feed ``bins`` if :class:`QuietScan` proves that no check among them fires;
        False (nothing fed) when a check may fire."""
        if bins.size == 0:
            return False
        scan = QuietScan([self], bins[None, :])
        if scan.quiet[0]:
            scan.commit(0)
        return bool(scan.quiet[0])

    def update_many(self, xs: npt.ArrayLike) -> Self:
        """Feed values in order (vectorised); ``alarms`` lists the alarms among them."""
        self._update_bins(np.searchsorted(self._edges, np.asarray(xs), side="right"))
        return self

    def update(self, x: float) -> Self:
        """River-style single update. Checks happen every ``stride`` values, so values
        are buffered until the next check: the verdict is identical to ``update_many``."""
        self._pending.append(bisect.bisect_right(self._edge_list, x))
        if (self._hist.seen + len(self._pending)) % self._hist.stride == 0:
            bins = np.asarray(self._pending, dtype=np.intp)
            self._pending.clear()
            # a check happens only after the last buffered value: any alarm is this one's
            alarms = self._update_bins(bins)
            self._alarms = [dataclasses.replace(a, index=0) for a in alarms]
        else:
            self._clear_alarms()
        return self


#: checks between two exact evaluations of :class:`QuietScan`
QUIET_SPAN = 4


class QuietScan:
    """Proves that a batch raises no alarm in KS windows, for several windows at once
    (the numeric features of a model: equal ``window`` and ``stride``, one batch of
    ``n`` bins each), at a fraction of the cost of evaluating every check.

    The cumulative counts ``C[b]`` of each window are evaluated exactly at every
    ``QUIET_SPAN``-th check (aligned on the window's own count of values) and at the
    last check of the batch; ``slack`` is how far the closest bin is from leaving its
    quiet interval (:meth:`SlidingWindowKS._quiet_counts`). A value in and a value out
    move every ``C[b]`` by at most 1, so a check ``d`` values from an evaluated one with
    slack >= ``d`` cannot fire. ``quiet[i]``: every check of window i is covered that
    way (it raises no alarm, exactly as the full scan would find); :meth:`commit` then
    leaves it as :meth:`SlidingWindowKS.update_many` would. The others (a check that
    may fire) are left to the full scan."""

    def __init__(self, tests: Sequence[SlidingWindowKS], bins: IntArray) -> None:
        f, n = bins.shape
        w, stride = tests[0].window, tests[0].stride
        if any(t.window != w or t.stride != stride for t in tests):
            raise ValueError("the windows of a scan need the same size and stride")
        hists = [t._hist for t in tests]
        k = max(h.n_bins for h in hists)
        span = stride * QUIET_SPAN
        seen = np.fromiter((h.seen for h in hists), np.int64, f)
        w0 = np.fromiter((h.buf.size for h in hists), np.int64, f)
        last = n - 1 - (seen + n) % stride  # the last value that ends a stride
        start = np.maximum(w - w0 - 1, 0)  # from here on the window is full
        first = start + (-(seen + start + 1)) % stride  # the first check
        has = first <= last
        phase = seen % span
        row_last = np.where(has, (phase + last) // span, -1)
        rows = int(row_last.max()) + 1  # evaluated rows; row ``rows`` takes the rest
        j = np.arange(n)
        group = (phase[:, None] + j) // span
        group[(j > last[:, None]) | ~has[:, None]] = rows  # after the last check
        base = (np.arange(f)[:, None] * (rows + 1) + group) * (k + 1)
        # the window before the batch, right-aligned, then the batch: the value leaving
        # as value j enters is column j (``k``: nothing leaves, the window is filling)
        joined = np.full((f, w + n), k, dtype=np.intp)
        for i, h in enumerate(hists):
            joined[i, w - h.buf.size : w] = h.buf
        joined[:, w:] = bins
        cells = f * (rows + 1) * (k + 1)
        delta = np.bincount((base + bins).ravel(), minlength=cells)
        delta -= np.bincount((base + joined[:, :n]).ravel(), minlength=cells)
        delta3 = delta.reshape(f, rows + 1, k + 1)[:, :, :k]
        counts = np.zeros((f, k), dtype=np.int64)
        lo = np.full((f, k - 1), -(w + 1), dtype=np.int64)
        hi = np.full((f, k - 1), 2 * w + 1, dtype=np.int64)
        ref = np.ones((f, k - 1))
        for i, (t, h) in enumerate(zip(tests, hists, strict=True)):
            counts[i, : h.n_bins] = h.counts
            lo[i, : h.n_bins - 1] = t._lo
            hi[i, : h.n_bins - 1] = t._hi
            ref[i, : h.n_bins - 1] = t._ref_cdf
        self.quiet = ~has
        self.statistic = np.zeros(f)
        if rows:
            hist = np.cumsum(delta3[:, :rows], axis=1)
            hist += counts[:, None, :]
            cdf = np.cumsum(hist, axis=2)[:, :, :-1]
            slack = np.minimum(cdf - lo[:, None, :], hi[:, None, :] - cdf).min(axis=2)
            r = np.arange(rows)
            end = np.minimum(span * (r + 1) - 1 - phase[:, None], last[:, None])
            valid = (r <= row_last[:, None]) & (end >= first[:, None])
            # checks between two evaluated rows, or before the first one, are covered
            # by a row's slack at their distance (see the class docstring)
            before = np.zeros((f, 1), dtype=np.int64)
            a = np.concatenate([before, slack[:, :-1]], axis=1)
            gap = end - np.concatenate([before, end[:, :-1]], axis=1)
            both = (a + slack >= gap) | (np.maximum(a, slack) >= gap - stride)
            alone = slack >= end - first[:, None]
            prev = np.concatenate([before.astype(bool), valid[:, :-1]], axis=1)
            ok = (slack >= 0) & np.where(prev, both, alone)
            self.quiet = has & np.all(ok | ~valid, axis=1)
            # the statistic of the last check (the detector's own formula, per row)
            at = hist[np.arange(f), np.maximum(row_last, 0)]
            self.statistic = np.max(np.abs(np.cumsum(at, axis=1)[:, :-1] / w - ref), axis=1)
            self.quiet |= ~has
        self._has = has
        self._tests, self._joined, self._n = tests, joined, n
        self._final = counts + delta3.sum(axis=1)

    def commit(self, i: int) -> None:
        """Feed test ``i`` its bins (``quiet[i]`` must hold)."""
        t, h, n = self._tests[i], self._tests[i]._hist, self._n
        if self._has[i]:
            t.statistic = float(self.statistic[i])
        h.buf = self._joined[i, max(n, h.window - h.buf.size) :].copy()
        h.counts = self._final[i, : h.n_bins].copy()
        h.seen += n
        t._clear_alarms()


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
    signal of their own.

    Parameters: ``reference`` the feature's reference counts; ``window`` the values
    tested; ``stride`` values between checks; ``alpha`` the false-alarm probability
    within ``horizon`` values; ``min_psi`` the PSI an alarm window must reach too (a
    significant but trivial change keeps sliding).

    >>> import numpy as np
    >>> from modelguard.core.drift.reference import categorical_profile
    >>> rng = np.random.default_rng(0)
    >>> ref = categorical_profile(list(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=5_000)))
    >>> det = SlidingWindowChi2(ref)
    >>> det.update_many(list(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=2_000))).alarms
    []
    >>> shifted = list(rng.choice(["a", "b", "c"], p=[0.3, 0.3, 0.4], size=1_000))
    >>> det.update_many(shifted).alarms[0].test
    'chi2_window'
    """

    test_name = "chi2_window"

    profile_type = CategoricalProfile

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
        self.stride, self.alpha, self.horizon = stride, alpha, horizon
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

    def update_many(self, xs: Sequence[str]) -> Self:
        """Feed categories in order; ``alarms`` lists the alarms among them (``index``
        counts every value, unseen ones included)."""
        bins = self.bins_of(xs)
        keep = np.flatnonzero(bins >= 0)
        alarms = self._update_bins(bins[keep])
        self._alarms = [dataclasses.replace(a, index=int(keep[a.index])) for a in alarms]
        return self

    def update(self, x: str) -> Self:
        """Feed one category (an unseen one only clears ``drift_detected``)."""
        return self.update_many([x])
