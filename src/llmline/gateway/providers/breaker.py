"""A circuit breaker: stop calling a backend that keeps failing.

After ``failures`` consecutive failures the circuit *opens* and calls are
refused at once (the router falls back instead of waiting on a dead
backend).  Once ``reset_s`` has passed, one trial call is let through
(*half-open*); its success closes the circuit, its failure opens it for
another ``reset_s``.  The clock is injectable so tests need not sleep.

Not thread-safe: a provider uses it from its one event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

__all__ = ["BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """``if breaker.allow(): ... breaker.record_success() / record_failure()``.

    Every allowed call must end in ``record_success``, ``record_failure``
    or ``release`` (no verdict, e.g. cancelled); a trial that never reports
    back is given up after ``reset_s`` so the circuit cannot stick open.
    """

    def __init__(
        self,
        failures: int,
        reset_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        if reset_s <= 0:
            raise ValueError("reset_s must be positive")
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_started: float | None = None
        self.last_failure = ""

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_s:
            return "half-open"
        return "open"

    def trial_in_flight(self) -> bool:
        """True while a half-open trial call has not reported back."""
        if self._trial_started is None:
            return False
        return self._clock() - self._trial_started < self.reset_s

    def retry_in_s(self) -> float:
        """Seconds until a trial call will be allowed (0 when it is now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.reset_s - self._clock())

    def allow(self) -> bool:
        """Whether a call may go ahead now; in half-open, only one at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self.trial_in_flight():
            return False
        self._trial_started = self._clock()
        return True

    def record_success(self) -> None:
        self._consecutive = 0
        self._opened_at = None
        self._trial_started = None

    def record_failure(self, reason: str = "") -> None:
        self._consecutive += 1
        if reason:
            self.last_failure = reason
        self._trial_started = None
        # A failed trial re-opens too: the count is never reset while open.
        if self._consecutive >= self.failures:
            self._opened_at = self._clock()

    def release(self) -> None:
        """An allowed call ended without telling whether the backend works."""
        self._trial_started = None
