"""Surviving outages of a dependency (Redis, Kafka): wait, retry with backoff, report.

A service wraps each call to a dependency in :meth:`DependencyGuard.call`. A transient
failure (by default a Redis ``ConnectionError``/``TimeoutError``) does not propagate: the
guard logs it once, sets ``modelguard_dependency_up{dependency=...}`` to 0, waits with
capped exponential backoff and full jitter, and calls again until the call succeeds
(then the gauge goes back to 1 and the recovery is logged with the outage's length) or
the service is asked to stop (then :class:`DependencyUnavailableError` is raised, so the
loop ends without doing anything further). Calls are retried whole: wrap units that
are safe to repeat (a read, an idempotent write, a MULTI/EXEC transaction).

>>> import random
>>> Backoff(base=0.1, cap=5.0).delay(0, random.Random(1)) <= 0.1
True
"""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import redis
import structlog
from prometheus_client import CollectorRegistry, Gauge

from modelguard.adapters.prometheus import gauge as build_gauge
from modelguard.contracts.telemetry import MODELGUARD_DEPENDENCY_UP
from modelguard.errors import DependencyError

log = structlog.get_logger("modelguard.dependency")

P = ParamSpec("P")
T = TypeVar("T")

#: Name of the gauge: 1 while the dependency answers, 0 during an outage.
DEPENDENCY_UP = MODELGUARD_DEPENDENCY_UP.name
#: Exceptions that mean "Redis is unreachable for now" (retried), not "the call is wrong".
REDIS_TRANSIENT: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)
#: Subclasses of a transient error that are not transient (redis' AuthenticationError is a
#: ConnectionError).
NEVER_TRANSIENT: tuple[type[BaseException], ...] = (redis.AuthenticationError,)

_gauges: weakref.WeakKeyDictionary[CollectorRegistry, Gauge] = weakref.WeakKeyDictionary()
_gauges_lock = threading.Lock()


def dependency_gauge(registry: CollectorRegistry) -> Gauge:
    """The one ``modelguard_dependency_up`` gauge of ``registry`` (created on first use)."""
    with _gauges_lock:
        gauge = _gauges.get(registry)
        if gauge is None:
            gauge = build_gauge(MODELGUARD_DEPENDENCY_UP, registry)
            _gauges[registry] = gauge
        return gauge


class DependencyUnavailableError(DependencyError):
    """The dependency was still down when the service was asked to stop."""

    def __init__(self, dependency: str, cause: BaseException) -> None:
        super().__init__(f"{dependency} unavailable: {cause}")
        self.dependency = dependency


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter: attempt ``n`` waits a uniform time in
    ``[0, min(cap, base * 2**n)]`` (at least ``floor``)."""

    base: float = 0.1
    cap: float = 5.0
    floor: float = 0.05

    def delay(self, attempt: int, rng: random.Random) -> float:
        return max(self.floor, rng.uniform(0.0, min(self.cap, self.base * 2 ** min(attempt, 30))))


class DependencyGuard:
    """Retries calls to ``dependency`` through outages; see the module docstring.

    ``stop`` ends the waiting (the service is shutting down); ``registry`` receives the
    gauge (optional, so tools and tests can use a guard without metrics).
    """

    def __init__(
        self,
        dependency: str,
        registry: CollectorRegistry | None = None,
        *,
        transient: tuple[type[BaseException], ...] = REDIS_TRANSIENT,
        backoff: Backoff = Backoff(),
        stop: threading.Event | None = None,
        sleep: Callable[[float], object] | None = None,
        seed: int | None = None,
    ) -> None:
        self.dependency = dependency
        self._transient = transient
        self._backoff = backoff
        self.stop = stop
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._gauge = dependency_gauge(registry).labels(dependency) if registry else None
        self.up = True
        self.outages = 0
        self._down_since = 0.0
        if self._gauge is not None:
            self._gauge.set(1)

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; False when the service is stopping."""
        if self._sleep is not None:
            self._sleep(seconds)
            return not (self.stop is not None and self.stop.is_set())
        if self.stop is None:
            time.sleep(seconds)
            return True
        return not self.stop.wait(seconds)

    def mark_down(self, error: BaseException) -> None:
        if self.up:
            self.up = False
            self.outages += 1
            self._down_since = time.monotonic()
            log.warning("dependency_down", dependency=self.dependency, error=str(error))
        if self._gauge is not None:
            self._gauge.set(0)

    def mark_up(self) -> None:
        if not self.up:
            self.up = True
            log.warning(
                "dependency_up",
                dependency=self.dependency,
                outage_seconds=round(time.monotonic() - self._down_since, 3),
            )
        if self._gauge is not None:
            self._gauge.set(1)

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)``, retried while it raises a transient error."""
        attempt = 0
        while True:
            try:
                result = fn(*args, **kwargs)
            except self._transient as exc:
                if isinstance(exc, NEVER_TRANSIENT):
                    raise  # a wrong password stays wrong: fail loudly, do not wait
                self.mark_down(exc)
                if not self._wait(self._backoff.delay(attempt, self._rng)):
                    raise DependencyUnavailableError(self.dependency, exc) from exc
                attempt += 1
                continue
            if not self.up:
                self.mark_up()
            return result

    def wrap(self, fn: Callable[P, T]) -> Callable[P, T]:
        """``fn`` with every call guarded."""

        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return self.call(fn, *args, **kwargs)

        return guarded
