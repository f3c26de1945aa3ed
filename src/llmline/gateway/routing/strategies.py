"""Routing strategies: which target of a deployment answers a request.

The gateway keeps one :class:`Router` per deployment and, per request,
calls :meth:`Router.choose`, then :meth:`Router.started` before sending and
:meth:`Router.finished` when the answer (or the failure) is in.  Strategies:

* ``random``: uniform among healthy targets;
* ``weighted``: probability proportional to ``spec.weights``;
* ``least-busy``: fewest requests in flight;
* ``latency``: lowest EWMA latency, new targets tried first;
* ``canary``: ``canary.percent`` % to the challenger, promoted or rolled
  back automatically against the SLO (:func:`~.rollouts.judge_canary`);
* ``shadow``: the live model answers, the other gets a copy;
* ``blue-green``: only the live colour answers.

Sticky routing (``spec.sticky``) makes random, weighted and canary choices
a hash of the user (or API key) instead of a draw, so a user keeps their
target while the split across users still follows the weights.

Pure Python, no I/O.  Everything that reads or writes shared counters holds
one lock, because providers may report from worker threads.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmline.gateway.deployments.spec import DeploymentSpec, DeploymentState, Phase
from llmline.gateway.routing.rollouts import COLOURS, Transition, check_state, judge_canary
from llmline.gateway.routing.stats import TargetStats

__all__ = ["Health", "RouteContext", "RouteDecision", "Router", "sticky_unit"]

Health = Callable[[str], bool]
# Recent outcomes kept per target: enough for the canary window and for a
# meaningful p95 in `deploy show` and /metrics.
_MIN_STATS_WINDOW = 100


def _always_healthy(target: str) -> bool:
    return True


@dataclass(frozen=True)
class RouteContext:
    """What the router may know about a request."""

    request_id: str
    sticky_key: str | None = None  # user id or API key hash when spec.sticky is set


@dataclass(frozen=True)
class RouteDecision:
    """The target that answers, why, and (shadow strategy) where a copy goes."""

    target: str
    reason: str
    shadow: str | None = None


def sticky_unit(*parts: str) -> float:
    """A stable, uniform number in the open interval (0, 1) from ``parts``.

    sha256 rather than :func:`hash`, which is salted per process: every
    gateway replica must send a user to the same target.
    """
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    # 53 bits fit a float exactly; +0.5 keeps the value off 0 and 1 so the
    # logarithm in _rendezvous is defined.
    return ((int.from_bytes(digest[:8], "big") >> 11) + 0.5) / 2**53


def _rendezvous(salt: str, key: str, targets: Sequence[str], weights: Sequence[float]) -> int:
    """Weighted rendezvous hashing: target i wins with probability
    ``weights[i] / sum(weights)`` over keys, and when a target drops out
    only its own users move."""
    best, best_score = 0, -1.0
    for i, (target, weight) in enumerate(zip(targets, weights, strict=True)):
        score = weight / -math.log(sticky_unit(salt, key, target))
        if score > best_score:
            best, best_score = i, score
    return best


class Router:
    """Per-deployment routing state: strategy, rng, per-target statistics,
    and the rollout phase (which a canary verdict may change)."""

    def __init__(
        self, spec: DeploymentSpec, state: DeploymentState, *, seed: int | None = None
    ) -> None:
        check_state(spec, state)
        self.spec = spec
        self._rng = random.Random(seed if seed is not None else spec.seed)
        self._lock = threading.Lock()
        self._phase: Phase = state.phase
        self._live = state.live
        self._window = max(spec.canary.window, _MIN_STATS_WINDOW)
        self._stats = {t: TargetStats(self._window) for t in spec.models}

    @property
    def phase(self) -> Phase:
        with self._lock:
            return self._phase

    @property
    def live(self) -> int:
        with self._lock:
            return self._live

    # -- choosing -------------------------------------------------------

    def choose(self, ctx: RouteContext, healthy: Health = _always_healthy) -> RouteDecision:
        """The target for one request.  Never an unhealthy target while a
        healthy one exists; with none healthy, the normal choice anyway."""
        # Health is asked outside the lock: the callback may take locks of its own.
        up = [t for t in self.spec.models if healthy(t)]
        candidates = up or list(self.spec.models)
        key = ctx.sticky_key if self.spec.sticky is not None else None
        with self._lock:
            decision = self._dispatch(candidates, key)
        if not up:
            return RouteDecision(
                decision.target, f"{decision.reason} (no healthy target)", decision.shadow
            )
        return decision

    def _dispatch(self, candidates: list[str], key: str | None) -> RouteDecision:
        strategy = self.spec.strategy
        if strategy == "random":
            return self._weighted(candidates, [1.0] * len(candidates), key, "random")
        if strategy == "weighted":
            return self._weighted(candidates, self._weights_of(candidates), key, "weighted")
        if strategy == "least-busy":
            return self._least_busy(candidates)
        if strategy == "latency":
            return self._latency(candidates)
        if strategy == "canary":
            return self._canary(candidates, key)
        if strategy == "shadow":
            return self._shadow(candidates)
        colour = COLOURS[self._live]
        return self._pinned(self.spec.models[self._live], f"blue-green: live={colour}", candidates)

    def _weights_of(self, candidates: list[str]) -> list[float]:
        assert self.spec.weights is not None  # the spec validator requires them
        by_target = dict(zip(self.spec.models, self.spec.weights, strict=True))
        weights = [by_target[t] for t in candidates]
        # Only zero-weight targets healthy: serving them beats failing.
        return weights if sum(weights) > 0 else [1.0] * len(candidates)

    def _weighted(
        self, candidates: list[str], weights: list[float], key: str | None, label: str
    ) -> RouteDecision:
        if key is not None:
            index = _rendezvous(self.spec.name, key, candidates, weights)
        else:
            index = self._rng.choices(range(len(candidates)), weights)[0]
        if label == "random":
            detail = f"random: 1 of {len(candidates)}"
        else:
            detail = f"weighted: {weights[index] / sum(weights):.2f}"
        if key is not None:
            detail = f"sticky: {self.spec.sticky} hash, {detail}"
        return RouteDecision(candidates[index], detail)

    def _least_busy(self, candidates: list[str]) -> RouteDecision:
        fewest = min(self._stats_of(t).in_flight for t in candidates)
        idle = [t for t in candidates if self._stats_of(t).in_flight == fewest]
        return RouteDecision(self._rng.choice(idle), f"least-busy: {fewest} in flight")

    def _latency(self, candidates: list[str]) -> RouteDecision:
        # A new target is explored by one request at a time: while its first
        # one is in flight, the others keep going to the fastest known target.
        fresh = [
            t
            for t in candidates
            if self._stats_of(t).ewma_ms is None and self._stats_of(t).in_flight == 0
        ]
        if fresh:
            return RouteDecision(self._rng.choice(fresh), "latency: exploring (no observations)")
        observed = {t: self._stats_of(t).ewma_ms for t in candidates}
        known = {t: ms for t, ms in observed.items() if ms is not None}
        if not known:
            return RouteDecision(
                self._rng.choice(candidates), "latency: exploring (first requests in flight)"
            )
        best = min(known.values())
        fastest = [t for t, ms in known.items() if ms == best]
        return RouteDecision(self._rng.choice(fastest), f"latency: ewma {best:.1f} ms")

    def _canary(self, candidates: list[str], key: str | None) -> RouteDecision:
        stable, challenger = self.spec.models
        if self._phase == "promoted":
            return self._pinned(challenger, "canary: promoted, all to challenger", candidates)
        if self._phase == "rolled-back":
            return self._pinned(stable, "canary: rolled back, all to stable", candidates)
        if challenger not in candidates:
            return RouteDecision(stable, f"canary: stable ({challenger} unhealthy)")
        if stable not in candidates:
            return RouteDecision(challenger, f"canary: challenger ({stable} unhealthy)")
        percent = self.spec.canary.percent
        # Salted with "canary" so the split is independent of other draws on the key.
        draw = self._rng.random() if key is None else sticky_unit(self.spec.name, key, "canary")
        if draw * 100 < percent:
            target, detail = challenger, f"canary: challenger ({percent:g}%)"
        else:
            target, detail = stable, f"canary: stable ({100 - percent:g}%)"
        if key is not None:
            detail = f"sticky: {self.spec.sticky} hash, {detail}"
        return RouteDecision(target, detail)

    def _shadow(self, candidates: list[str]) -> RouteDecision:
        models = self.spec.models
        if self._phase == "promoted":
            return self._pinned(models[1], "shadow: promoted, no copy", candidates)
        if self._phase == "rolled-back":
            return self._pinned(models[0], "shadow: rolled back, no copy", candidates)
        primary, copy = models[self._live], models[1 - self._live]
        if primary not in candidates:
            return RouteDecision(copy, f"shadow: {primary} unhealthy, serving {copy}, no copy")
        if copy not in candidates:
            # A copy to an unhealthy target would only add load and noise.
            return RouteDecision(primary, f"shadow: primary, no copy ({copy} unhealthy)")
        return RouteDecision(primary, f"shadow: primary, copy to {copy}", shadow=copy)

    @staticmethod
    def _pinned(target: str, reason: str, candidates: list[str]) -> RouteDecision:
        if target in candidates:
            return RouteDecision(target, reason)
        other = candidates[0]
        return RouteDecision(other, f"{reason}; {target} unhealthy, serving {other}")

    # -- failures -------------------------------------------------------

    def fallbacks(self, failed: str, healthy: Health = _always_healthy) -> list[str]:
        """Targets to try after ``failed``, in order: the deployment's other
        models (healthy ones first), then ``spec.fallbacks``."""
        others = [t for t in self.spec.models if t != failed]
        up = [t for t in others if healthy(t)]
        order = up + [t for t in others if t not in up]
        for target in self.spec.fallbacks:
            if target != failed and target not in order:
                order.append(target)
        return order

    def fallback_decisions(
        self, failed: str, healthy: Health = _always_healthy
    ) -> list[RouteDecision]:
        """:meth:`fallbacks` as decisions whose reason names the failed target."""
        reason = f"fallback after {failed} failed"
        return [RouteDecision(t, reason) for t in self.fallbacks(failed, healthy)]

    # -- reports --------------------------------------------------------

    def _stats_of(self, target: str) -> TargetStats:
        # Fallback targets outside spec.models get counters on first use.
        stats = self._stats.get(target)
        if stats is None:
            stats = self._stats[target] = TargetStats(self._window)
        return stats

    def started(self, target: str) -> None:
        """A request to ``target`` begins (call right after :meth:`choose`)."""
        with self._lock:
            self._stats_of(target).start()

    def finished(self, target: str, *, latency_ms: float, ok: bool) -> Transition | None:
        """A request to ``target`` ended.  Returns the canary verdict it
        triggered, if any: each transition is returned exactly once, and
        the router routes per the new phase from then on."""
        with self._lock:
            stats = self._stats_of(target)
            stats.finish(latency_ms, ok=ok, alpha=self.spec.latency_alpha)
            if not (
                self.spec.strategy == "canary"
                and self._phase == "running"
                and target == self.spec.models[1]
            ):
                return None
            verdict = judge_canary(self.spec.canary, stats.requests, stats.recent)
            if verdict is not None:
                self._phase, self._live = verdict.phase, verdict.live
            return verdict

    def snapshot(self) -> dict[str, Any]:
        """Counters for ``llmline deploy show`` and /metrics."""
        with self._lock:
            return {
                "deployment": self.spec.name,
                "strategy": self.spec.strategy,
                "phase": self._phase,
                "live": self._live,
                "targets": {t: s.as_dict() for t, s in self._stats.items()},
            }
