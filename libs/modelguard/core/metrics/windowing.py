"""Event-time windows of the metrics processor: the watermark, tumbling windows (the
coarser ones merged from the finest as it closes) and last-N count windows."""

from __future__ import annotations

import math

from modelguard.core.metrics import baseline as _baseline
from modelguard.core.metrics.aggregate import Aggregate
from modelguard.core.metrics.base import ProcessorBase
from modelguard.core.metrics.config import VersionKey
from modelguard.core.metrics.state import ClosedWindow, PartitionState, VersionState, bump


class WindowingMixin(ProcessorBase):
    """Opens, advances and closes the windows of a partition's state."""

    def flush(self, state: PartitionState) -> list[ClosedWindow]:
        """Close every open event-time window (end of a replay or an offline report)."""
        out: list[ClosedWindow] = []
        if math.isfinite(state.watermark):
            self._sweep(state, state.watermark)  # expiries due count, as before any close
        for length in self._lengths:
            for start in sorted(state.windows.get(length, {})):
                self._close(state, length, start, out)
        return out

    def _emit_count_window(
        self,
        state: PartitionState,
        model: str,
        version: str,
        vs: VersionState,
        end: float,
        out: list[ClosedWindow],
    ) -> None:
        agg = Aggregate.of_pairs(vs.recent)  # the last N pairs: those since the last one
        metrics = agg.metrics()
        if model not in self.config.baselines and model not in state.auto_baselines:
            acc = metrics.get("accuracy")
            if acc is not None and acc > 0:
                state.auto_baselines[model] = acc
        _baseline.compare(self.config, state, model, vs, "count", metrics)
        out.append(
            ClosedWindow(
                model,
                version,
                "count",
                None,
                self.config.last_n,
                vs.count_window_start,
                end,
                state.partition,
                agg,
                metrics,
            )
        )
        vs.since_count_window = 0
        vs.count_window_start = math.inf

    # -- windows ---------------------------------------------------------------------
    def _window(
        self, state: PartitionState, t: float, key: VersionKey, kind: str
    ) -> Aggregate | None:
        """The finest window's aggregate at ``t`` (None, counted late, when closed);
        coarser windows are merged from the finest ones as these close."""
        length = self._base
        start = math.floor(t / length) * length
        if start + length <= state.watermark:
            bump(state.late, kind)
            return None
        by_start = state.windows.get(length)
        if by_start is None:
            by_start = state.windows[length] = {}
        by_version = by_start.get(start)
        if by_version is None:
            by_version = by_start[start] = {}
        agg = by_version.get(key)
        if agg is None:
            agg = by_version[key] = Aggregate()
        return agg

    def _advance(self, state: PartitionState, out: list[ClosedWindow]) -> None:
        cfg = self.config
        wp = (
            None
            if state.max_prediction_time is None
            else state.max_prediction_time - cfg.allowed_lateness_s
        )
        wl = None if state.max_label_time is None else state.max_label_time - cfg.allowed_lateness_s
        if wp is None and wl is None:
            return
        # an input not seen yet counts as lagging: it holds the watermark max_input_lag_s back
        lag = cfg.max_input_lag_s
        wp = -math.inf if wp is None else wp
        wl = -math.inf if wl is None else wl
        w = min(max(wp, wl - lag), max(wl, wp - lag))
        if w <= state.watermark:
            return
        base = state.windows.get(self._base)
        closing = base is not None and bool(base) and min(base) + self._base <= w
        if closing or w >= state.next_sweep:
            self._sweep(state, w)  # before the watermark moves: expiries land in open windows
        state.watermark = w
        if closing:
            for length in self._lengths:  # finest first: it feeds the coarser ones
                by_start = state.windows.get(length)
                if by_start:
                    for start in sorted(x for x in by_start if x + length <= w):
                        self._close(state, length, start, out)

    def _close(
        self, state: PartitionState, length: float, start: float, out: list[ClosedWindow]
    ) -> None:
        by_version = state.windows[length].pop(start)
        name = f"{length:g}s"
        if length == self._base:
            for coarse in self._coarse:
                c_start = math.floor(start / coarse) * coarse
                into = state.windows.setdefault(coarse, {}).setdefault(c_start, {})
                for key, agg in by_version.items():
                    target = into.get(key)
                    if target is None:
                        target = into[key] = Aggregate()
                    target.merge(agg)
        for (model, version), agg in sorted(by_version.items()):
            metrics = agg.metrics()
            vs = state.version(model, version)
            _baseline.compare(self.config, state, model, vs, name, metrics)
            vs.last_window_metrics[name] = metrics
            out.append(
                ClosedWindow(
                    model,
                    version,
                    "tumbling",
                    length,
                    None,
                    start,
                    start + length,
                    state.partition,
                    agg,
                    metrics,
                )
            )
