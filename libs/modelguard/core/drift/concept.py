"""Concept drift on the error stream: :class:`ConceptDetector` (ADWIN finds changes, the
rise of the error rate over a healthy baseline decides whether a change is drift) and
:func:`prediction_error`, the error of one labelled prediction."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import river
from river.drift import ADWIN

from modelguard.core.drift import severity as sev
from modelguard.core.drift.detector import AlarmState
from modelguard.core.drift.reference import NumericProfile, category_of, is_number, safe_float

#: the river release whose ADWIN bytes a dump holds (another one rebuilds from errors)
RIVER_VERSION = str(getattr(river, "__version__", ""))


@dataclass(frozen=True)
class ConceptAlarm:
    """A rise of the error rate by at least the LOW effect over ``baseline``, found by
    an ADWIN cut (``at_cut``) or by watching the post-cut window grow after a cut whose
    rise was still small (a gradual drift)."""

    estimate: float
    baseline: float
    increase: float
    width: int
    at_cut: bool
    #: position of the alarm in the batch fed (0 for a single update)
    index: int = 0


class ConceptDetector(AlarmState[ConceptAlarm]):
    """Concept drift on the error stream: ADWIN finds changes, the rise of the error
    rate over a healthy baseline decides whether a change is drift.

    * river's ADWIN (``delta``) runs on every error; after a cut it restarts from the
      errors after the cut, as river's detectors do. The judgement keeps its own state
      across the cut.
    * At an upward cut the rise is judged on the post-cut level against the
      ``baseline``: the mean after the most likely change point of the window ADWIN cut
      (or ADWIN's post-cut estimate when higher), not an estimate still holding
      pre-drift errors. A rise of at least the LOW effect (2 points) is an alarm at once.
    * A smaller rise (the first cut of a gradual drift) is not discarded: the detector
      keeps watching the new window and alarms as soon as its mean exceeds the baseline
      by the LOW effect *and* by three standard errors (``watch``, from
      ``MIN_WATCH_WIDTH`` errors on). At most one alarm per ADWIN cut, so it never
      alarms more often than ADWIN cuts.
    * The baseline is the model's healthy error rate, refreshed safely: the first
      ``baseline_labels`` labels set it; while not drifted and not watching, it follows
      ADWIN's estimate *down* whenever ADWIN's window (homogeneous: no cut in it) holds
      at least ``baseline_labels`` errors, so a model that improves is judged against its
      current level (a fixed first-500 baseline delayed detection by ~2,700 labels); at
      an upward cut it becomes the mean before the change point (the level the change
      started from) when that is lower. It never follows a rise, so errors leaking into
      ADWIN's window before the cut cannot hide the drift. A drifted model is
      judged against its healthy level until the error rate is back (``drifted``
      clears when the estimate is within the LOW effect of the baseline).

    Parameters: ``delta`` is ADWIN's confidence (smaller: fewer, later cuts);
    ``baseline_labels`` the labels that set the first baseline (and the homogeneous
    window a lower baseline needs); ``replay`` the errors kept to rebuild ADWIN after a
    restart. A value is an error in [0, 1] (0/1 for a class, see
    :func:`prediction_error`). It follows the detector contract
    (:class:`~modelguard.core.drift.detector.Detector`).

    :meth:`to_dict` saves ADWIN exactly: river's (Rust) window serialises its buckets
    to bytes (``__getstate__``, its own format, not pickle), stored as base64, with the
    cut flag; :meth:`from_dict` restores them, so a restored detector continues like an
    uninterrupted one (a kill -9 replay gives the same alarms). The last ``replay``
    errors are kept too (a JSON list, also for the change point): a dump without the
    bytes (older, or bytes another river version cannot read) feeds the last
    ``min(width, replay)`` of them to a new ADWIN, which covers the same errors as the
    one saved while its window is at most ``replay`` long (its estimate over them is the
    same; only the bucket layout, hence the exact moment of a later cut, can differ).

    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> det = ConceptDetector(delta=0.002, baseline_labels=500)
    >>> det.update_many((rng.random(3_000) < 0.1).astype(float)).drift_detected
    False
    >>> 0.08 < det.baseline < 0.12  # the healthy error rate
    True
    >>> worse = (rng.random(3_000) < 0.3).astype(float)
    >>> any(det.update(float(e)).drift_detected for e in worse)
    True
    >>> det.drifted
    True
    """

    #: standard errors by which a watched window must exceed the baseline
    WATCH_Z = 3.0
    #: errors a watched window needs before it may alarm
    MIN_WATCH_WIDTH = 50
    #: errors on each side of a change point
    MIN_SEGMENT = 200

    def __init__(
        self, delta: float = 0.002, baseline_labels: int = 500, replay: int = 5_000
    ) -> None:
        self.adwin = ADWIN(delta=delta)  # type: ignore[no-untyped-call]
        self.delta = delta
        self.baseline_labels = baseline_labels
        self.replay = replay
        self.n = 0
        self.errors = 0.0
        self.baseline: float | None = None
        self.drifted = False
        #: a cut raised the error rate by less than the LOW effect: watch the window
        self.watch = False
        self.cuts = 0
        self.recent: deque[float] = deque(maxlen=max(1, replay))
        self.alarm: ConceptAlarm | None = None
        self._clear_alarms()
        #: restored from a dump taken right after a cut: ADWIN restarts on the next
        #: error (as river's does after a cut)
        self._cut = False

    @property
    def estimation(self) -> float:
        return float(self.adwin.estimation)

    def increase(self) -> float:
        return self.estimation - (self.baseline if self.baseline is not None else 0.0)

    def recovered(self) -> bool:
        """The error rate is back within the LOW effect of the baseline, measured on at
        least ``MIN_WATCH_WIDTH`` errors (a window just restarted by a cut says nothing)."""
        low = sev.SCALES["error_rate"][0]
        return int(self.adwin.width) >= self.MIN_WATCH_WIDTH and self.increase() < low

    def settle(self) -> bool:
        """Clear ``drifted`` when the error rate has :meth:`recovered` (the processor
        calls it at every window close); True when the model is still drifted. A
        drifted detector raises no new alarm until it is settled or ADWIN cuts down."""
        if self.drifted and self.recovered():
            self.drifted = False
        return self.drifted

    def _change_point(self, before: int) -> tuple[float, float, int] | None:
        """(mean before, mean after, errors after) at the most likely change point of
        the window ADWIN just cut (its last ``before + 1`` errors, within the replay
        buffer): the split maximising the standardised difference of the two means,
        each side at least ``MIN_SEGMENT`` long. ADWIN drops old buckets only until no
        cut remains, so its post-cut window can still hold many pre-change errors; the
        change point measures the new level itself."""
        length = min(before + 1, len(self.recent))
        m = self.MIN_SEGMENT
        if length < 2 * m:
            return None
        x = np.fromiter(
            itertools.islice(self.recent, len(self.recent) - length, None), np.float64, length
        )
        c = np.cumsum(x)
        k = np.arange(m, length - m + 1)
        pre = c[k - 1] / k
        post = (c[-1] - c[k - 1]) / (length - k)
        score = (post - pre) * np.sqrt(k * (length - k) / length)
        i = int(np.argmax(score))
        return float(pre[i]), float(post[i]), int(length - k[i])

    def _fire(
        self, baseline: float, at_cut: bool, level: float | None = None, width: int | None = None
    ) -> bool:
        est = self.estimation if level is None else level
        self.alarm = ConceptAlarm(
            est,
            baseline,
            est - baseline,
            int(self.adwin.width) if width is None else width,
            at_cut,
        )
        self.drifted = True
        self.watch = False
        return True

    def update(self, x: float) -> Self:
        """Feed one error; ``drift_detected`` when the error rate rose to drift (``alarm``
        holds the details)."""
        self._drift_detected = self._step(x)
        self._alarms = [self.alarm] if self._drift_detected and self.alarm is not None else []
        return self

    def update_many(self, xs: Sequence[float] | npt.NDArray[np.float64]) -> Self:
        """Feed errors in order: the same as one :meth:`update` each."""
        alarms: list[ConceptAlarm] = []
        fired = False
        for i, x in enumerate(xs):
            fired = self._step(float(x))
            if fired and self.alarm is not None:
                alarms.append(dataclasses.replace(self.alarm, index=i))
        self._drift_detected = fired
        self._alarms = alarms
        return self

    def _step(self, error: float) -> bool:
        """One error; True when the error rate rose to drift."""
        reset = self.adwin.drift_detected or self._cut  # ADWIN restarts on this update
        if self._cut:
            self.adwin = ADWIN(delta=self.delta)  # type: ignore[no-untyped-call]
            self._cut = False
        before = 0 if reset else int(self.adwin.width)
        previous = 0.0 if reset else float(self.adwin.estimation)
        self.adwin.update(error)  # type: ignore[no-untyped-call]
        self.recent.append(error)
        self.n += 1
        self.errors += error
        self.alarm = None
        if self.baseline is None:
            if self.n >= self.baseline_labels:
                self.baseline = self.errors / self.n
            return False
        low = sev.SCALES["error_rate"][0]
        est = self.estimation
        width = int(self.adwin.width)
        if self.adwin.drift_detected:
            self.cuts += 1
            if est <= previous or est < self.baseline:  # a fall: better, or drift over
                self.watch = False
                if self.drifted and est - self.baseline < low:
                    self.drifted = False
                return False
            if self.drifted:
                return False
            level, after = est, width
            split = self._change_point(before)
            if split is not None:
                pre, post, n_post = split
                self.baseline = min(self.baseline, pre)  # the level the change started from
                if post > level:
                    level, after = post, n_post
            if level - self.baseline >= low:
                return self._fire(self.baseline, at_cut=True, level=level, width=after)
            self.watch = True
            return False
        if self.drifted:
            return False
        if self.watch:
            rise = est - self.baseline
            if rise >= low and width >= self.MIN_WATCH_WIDTH:
                se = math.sqrt(max(est * (1.0 - est), 1e-6) / width)
                if rise >= self.WATCH_Z * se:
                    return self._fire(self.baseline, at_cut=False)
            return False
        if width >= self.baseline_labels and est < self.baseline:
            self.baseline = est  # a homogeneous window of a model that got better
        return False

    def to_dict(self) -> dict[str, Any]:
        """Parameters and state as a strict JSON value (ADWIN as its recent errors)."""
        return {
            "delta": self.delta,
            "baseline_labels": self.baseline_labels,
            "replay": self.replay,
            "n": self.n,
            "errors": self.errors,
            "baseline": self.baseline,
            "drifted": self.drifted,
            "watch": self.watch,
            "cuts": self.cuts,
            "width": int(self.adwin.width),
            "cut": bool(self.adwin.drift_detected or self._cut),
            "adwin": None if self._cut else _adwin_state(self.adwin),
            "river": RIVER_VERSION,
            "recent": list(self.recent),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """The inverse of :meth:`to_dict` (ADWIN rebuilt from the recent errors)."""
        c = cls(float(d["delta"]), int(d["baseline_labels"]), int(d["replay"]))
        c.recent.extend(float(e) for e in d["recent"])
        exact = d.get("adwin") if d.get("river") == RIVER_VERSION else None
        if exact is None or not _restore_adwin(c.adwin, exact, bool(d.get("cut", False))):
            width = min(int(d["width"]), len(c.recent))
            for e in list(c.recent)[len(c.recent) - width :]:
                c.adwin.update(e)  # type: ignore[no-untyped-call]
            c._cut = bool(d.get("cut", False))
        c.n = int(d["n"])
        c.errors = float(d["errors"])
        c.baseline = None if d["baseline"] is None else float(d["baseline"])
        c.drifted = bool(d["drifted"])
        c.watch = bool(d.get("watch", False))
        c.cuts = int(d.get("cuts", 0))
        return c


def _adwin_state(adwin: ADWIN) -> str | None:
    """river's ADWIN window as base64 text (its own byte format), or None if this river
    cannot give it."""
    getstate = getattr(getattr(adwin, "_helper", None), "__getstate__", None)
    state = getstate() if getstate is not None else None
    return base64.b64encode(state).decode("ascii") if isinstance(state, bytes) else None


def _restore_adwin(adwin: ADWIN, text: str, cut: bool) -> bool:
    """Load :func:`_adwin_state`'s text into a fresh ``adwin``; False (nothing changed
    that matters: the caller rebuilds it) when this river cannot read it."""
    helper = getattr(adwin, "_helper", None)
    try:
        helper.__setstate__(base64.b64decode(text, validate=True))  # type: ignore[union-attr]
    except BaseException as exc:  # river's Rust code panics on bytes it cannot read
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        adwin._reset()  # type: ignore[no-untyped-call]
        return False
    adwin._drift_detected = cut
    return True


def prediction_error(task: str, prediction: object, label: object, prof: object) -> float:
    """0/1 error of a class, or the absolute error of a regression output in units of
    twice the reference output's sigma, capped at 1 (never raises on a finite value)."""
    if task == "regression" and is_number(prediction) and is_number(label):
        p, y = safe_float(prediction), safe_float(label)
        if p is None or y is None:
            return 1.0
        scale = prof.std if isinstance(prof, NumericProfile) and prof.std > 0 else 1.0
        diff = abs(p - y)
        if not math.isfinite(diff):
            return 1.0
        return min(1.0, diff / (2 * scale))
    return 0.0 if category_of(prediction) == category_of(label) else 1.0
