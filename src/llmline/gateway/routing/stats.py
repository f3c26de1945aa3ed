"""Per-target request statistics that routing strategies read: requests in
flight, totals, an EWMA of latency and a window of recent outcomes."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FAILURE_PENALTY", "Outcome", "TargetStats", "p95"]

# A failure goes into the latency EWMA as at least this multiple of the
# current average; otherwise a target that fails fast would look fast and
# the latency strategy would send it more traffic.
FAILURE_PENALTY = 2.0


@dataclass(frozen=True)
class Outcome:
    """One finished request."""

    latency_ms: float
    ok: bool


def p95(latencies: Sequence[float]) -> float | None:
    """95th percentile by nearest rank (an observed value, never interpolated),
    ``None`` without observations."""
    if not latencies:
        return None
    ordered = sorted(latencies)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


class TargetStats:
    """Counters of one target.  Not thread-safe on its own: the router holds
    its lock around every use."""

    def __init__(self, window: int) -> None:
        self.in_flight = 0
        self.requests = 0
        self.errors = 0
        self.ewma_ms: float | None = None
        self.recent: deque[Outcome] = deque(maxlen=window)

    def start(self) -> None:
        self.in_flight += 1

    def finish(self, latency_ms: float, *, ok: bool, alpha: float) -> None:
        if not math.isfinite(latency_ms) or latency_ms < 0:
            raise ValueError(f"latency_ms must be finite and >= 0, got {latency_ms!r}")
        # Clamped: a finish without a matching start must not make the target
        # look less busy than idle to least-busy.
        self.in_flight = max(0, self.in_flight - 1)
        self.requests += 1
        if not ok:
            self.errors += 1
        sample = latency_ms
        if not ok and self.ewma_ms is not None:
            sample = max(latency_ms, FAILURE_PENALTY * self.ewma_ms)
        if self.ewma_ms is None:
            self.ewma_ms = sample
        else:
            self.ewma_ms = alpha * sample + (1 - alpha) * self.ewma_ms
        self.recent.append(Outcome(latency_ms, ok))

    def last(self, n: int) -> list[Outcome]:
        """The ``n`` most recent outcomes (fewer if fewer were seen), oldest first."""
        items = list(self.recent)
        return items[-n:]

    def as_dict(self) -> dict[str, Any]:
        return {
            "in_flight": self.in_flight,
            "requests": self.requests,
            "errors": self.errors,
            "ewma_ms": self.ewma_ms,
            "p95_ms": p95([o.latency_ms for o in self.recent]),
        }
