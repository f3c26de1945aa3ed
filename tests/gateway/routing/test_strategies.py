"""Routing strategies and rollouts: seeded statistical checks of the splits,
the canary verdicts, manual promote/rollback and thread safety."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from llmline.errors import ConfigError, UserError
from llmline.gateway.deployments.spec import CanaryPolicy, DeploymentSpec, DeploymentState
from llmline.gateway.routing import (
    RouteContext,
    RouteDecision,
    Router,
    Transition,
    apply_manual,
)

__all__: list[str] = []

A, B, C = "fake:a", "fake:b", "fake:c"


def spec(
    strategy: str = "random", models: tuple[str, ...] = (A, B, C), **kw: Any
) -> DeploymentSpec:
    return DeploymentSpec(name="dep", models=list(models), strategy=strategy, **kw)


def router(s: DeploymentSpec, seed: int | None = 7, **state: Any) -> Router:
    return Router(s, DeploymentState(**state), seed=seed)


def ctx(i: int = 0, key: str | None = None) -> RouteContext:
    return RouteContext(request_id=f"req-{i}", sticky_key=key)


def shares(r: Router, n: int, healthy: Any = None) -> dict[str, float]:
    if healthy is None:
        counts = Counter(r.choose(ctx(i)).target for i in range(n))
    else:
        counts = Counter(r.choose(ctx(i), healthy).target for i in range(n))
    return {t: c / n for t, c in counts.items()}


def canary(**policy: Any) -> DeploymentSpec:
    return spec("canary", (A, B), canary=CanaryPolicy(**policy))


# -- random ------------------------------------------------------------------


def test_random_spreads_uniformly() -> None:
    n = 3000
    r = router(spec(), seed=1)
    counts = Counter(r.choose(ctx(i)).target for i in range(n))
    assert set(counts) == {A, B, C}
    for target in (A, B, C):
        assert abs(counts[target] / n - 1 / 3) < 0.05
    # chi-square with 2 degrees of freedom; 13.82 is the p = 0.001 critical value
    chi2 = sum((counts[t] - n / 3) ** 2 / (n / 3) for t in (A, B, C))
    assert chi2 < 13.82


def test_random_is_reproducible_from_the_seed() -> None:
    def run(seed: int) -> list[str]:
        r = router(spec(), seed=seed)
        return [r.choose(ctx(i)).target for i in range(60)]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_seed_argument_overrides_spec_seed() -> None:
    def run(s: DeploymentSpec, seed: int | None) -> list[str]:
        r = Router(s, DeploymentState(), seed=seed)
        return [r.choose(ctx(i)).target for i in range(60)]

    seeded = spec(seed=11)
    assert run(seeded, None) == run(seeded, None)  # spec.seed alone is reproducible
    assert run(seeded, None) == run(spec(seed=12), 11)
    assert run(seeded, 5) != run(seeded, None)


def test_random_reason() -> None:
    decision = router(spec()).choose(ctx())
    assert decision.reason == "random: 1 of 3"
    assert decision.shadow is None


# -- weighted ----------------------------------------------------------------


def test_weighted_split_follows_weights() -> None:
    got = shares(router(spec("weighted", (A, B), weights=[0.7, 0.3]), seed=2), 5000)
    assert abs(got[A] - 0.7) < 0.03
    assert abs(got[B] - 0.3) < 0.03


def test_weighted_renormalises_without_an_unhealthy_target() -> None:
    s = spec("weighted", weights=[0.5, 0.25, 0.25])
    got = shares(router(s, seed=3), 4000, healthy=lambda t: t != A)
    assert A not in got
    assert abs(got[B] - 0.5) < 0.03
    assert router(s).choose(ctx(), lambda t: t != A).reason == "weighted: 0.50"


def test_weighted_zero_weight_never_chosen_while_others_healthy() -> None:
    s = spec("weighted", weights=[1.0, 0.0, 1.0])
    assert B not in shares(router(s), 1000)
    # ... but it serves when it is the only healthy target
    assert shares(router(s), 50, healthy=lambda t: t == B) == {B: 1.0}


# -- health ------------------------------------------------------------------


@pytest.mark.parametrize(
    "s",
    [
        spec("random"),
        spec("weighted", weights=[0.1, 0.8, 0.1]),
        spec("least-busy"),
        spec("latency"),
        spec("canary", (A, B), canary=CanaryPolicy(percent=50)),
        spec("shadow", (A, B)),
        spec("blue-green", (A, B)),
    ],
    ids=lambda s: s.strategy,
)
def test_unhealthy_target_never_chosen(s: DeploymentSpec) -> None:
    for down in s.models:

        def healthy(target: str, down: str = down) -> bool:
            return target != down

        r = router(s)
        picked = set()
        for i in range(300):
            decision = r.choose(ctx(i), healthy)
            assert decision.shadow != down
            picked.add(decision.target)
            r.started(decision.target)
            r.finished(decision.target, latency_ms=10.0, ok=True)
        assert down not in picked


def test_no_healthy_target_returns_the_normal_choice() -> None:
    r = router(spec("blue-green", (A, B)), live=1)
    decision = r.choose(ctx(), lambda t: False)
    assert decision.target == B
    assert "no healthy target" in decision.reason
    got = shares(router(spec()), 600, healthy=lambda t: False)
    assert set(got) == {A, B, C}


# -- least-busy and latency --------------------------------------------------


def test_least_busy_picks_the_idle_target() -> None:
    r = router(spec("least-busy"))
    r.started(A)
    r.started(B)
    r.started(B)
    decision = r.choose(ctx())
    assert decision == RouteDecision(C, "least-busy: 0 in flight")
    r.started(C)
    r.started(C)
    assert r.choose(ctx()).target == A  # now A has 1, B and C have 2
    r.finished(B, latency_ms=5.0, ok=True)
    r.finished(B, latency_ms=5.0, ok=True)
    assert r.choose(ctx()).target == B


def test_least_busy_breaks_ties_randomly() -> None:
    got = shares(router(spec("least-busy"), seed=4), 900)
    assert set(got) == {A, B, C}
    assert all(abs(v - 1 / 3) < 0.06 for v in got.values())


def _observe(r: Router, target: str, ms: float, n: int = 1, ok: bool = True) -> None:
    for _ in range(n):
        r.started(target)
        r.finished(target, latency_ms=ms, ok=ok)


def test_latency_explores_new_targets_then_prefers_the_fastest() -> None:
    r = router(spec("latency", (A, B)))
    first = r.choose(ctx())
    assert "exploring" in first.reason
    _observe(r, first.target, 50.0)
    second = r.choose(ctx())
    assert second.target != first.target  # the unobserved one is tried next
    assert "exploring" in second.reason
    _observe(r, A, 50.0, 5)
    _observe(r, B, 10.0, 5)
    decisions = [r.choose(ctx(i)) for i in range(50)]
    assert {d.target for d in decisions} == {B}
    ewma = r.snapshot()["targets"][B]["ewma_ms"]
    assert ewma < 50.0
    assert decisions[0].reason == f"latency: ewma {ewma:.1f} ms"


def test_latency_explores_one_request_at_a_time() -> None:
    r = router(spec("latency", (A, B)))
    _observe(r, A, 30.0)
    r.started(B)  # B's first request is in flight: don't pile on
    assert r.choose(ctx()) == RouteDecision(A, "latency: ewma 30.0 ms")


def test_latency_ewma_uses_alpha_and_penalises_failures() -> None:
    r = router(spec("latency", (A, B), latency_alpha=0.5))
    _observe(r, A, 100.0)
    _observe(r, A, 20.0)
    assert r.snapshot()["targets"][A]["ewma_ms"] == pytest.approx(60.0)
    _observe(r, B, 40.0)
    assert r.choose(ctx()).target == B
    # B fails fast: that must not make it look faster (40 -> 0.5*80 + 0.5*40)
    _observe(r, B, 1.0, ok=False)
    assert r.snapshot()["targets"][B]["ewma_ms"] == pytest.approx(60.0)
    _observe(r, B, 1.0, ok=False)
    assert r.choose(ctx()).target == A


def test_latency_reported_must_be_valid() -> None:
    r = router(spec())
    with pytest.raises(ValueError, match="latency_ms"):
        r.finished(A, latency_ms=float("nan"), ok=True)
    with pytest.raises(ValueError, match="latency_ms"):
        r.finished(A, latency_ms=-1.0, ok=True)


# -- canary ------------------------------------------------------------------


def test_canary_share_matches_percent() -> None:
    r = router(canary(percent=10), seed=5)
    decisions = [r.choose(ctx(i)) for i in range(5000)]
    share = sum(d.target == B for d in decisions) / len(decisions)
    assert abs(share - 0.10) < 0.02
    reasons = {d.reason for d in decisions}
    assert reasons == {"canary: challenger (10%)", "canary: stable (90%)"}


def _drive(r: Router, n: int, outcome: Any) -> list[tuple[int, Transition]]:
    """Route ``n`` requests; ``outcome(k)`` gives (latency, ok) of the k-th
    challenger request.  Returns the transitions with the index at which they came."""
    out = []
    k = 0
    for i in range(n):
        target = r.choose(ctx(i)).target
        r.started(target)
        if target == B:
            ms, ok = outcome(k)
            k += 1
        else:
            ms, ok = 20.0, True
        t = r.finished(target, latency_ms=ms, ok=ok)
        if t is not None:
            out.append((k, t))
    return out


def test_canary_auto_promotes_exactly_once() -> None:
    r = router(canary(percent=50, promote_after=30, window=10, max_p95_ms=100))
    transitions = _drive(r, 400, lambda k: (50.0, True))
    assert len(transitions) == 1
    k, t = transitions[0]
    assert k == 30  # on the 30th challenger request, not before
    assert (t.phase, t.live) == ("promoted", 1)
    assert t.reason == "canary promoted after 30 requests within SLO (errors 0.0%, p95 50 ms)"
    assert r.phase == "promoted"
    assert {r.choose(ctx(i)).target for i in range(100)} == {B}
    assert r.choose(ctx()).reason == "canary: promoted, all to challenger"


def test_canary_rolls_back_on_errors_once_min_requests_seen() -> None:
    # every 5th challenger request fails: 20% > 5%
    r = router(canary(percent=50, min_requests=10, promote_after=50, window=20))
    transitions = _drive(r, 400, lambda k: (30.0, k % 5 != 0))
    assert len(transitions) == 1
    k, t = transitions[0]
    assert k == 10  # errors from the first request on, but judged only at min_requests
    assert (t.phase, t.live) == ("rolled-back", 0)
    assert t.reason == "canary rolled back: error rate 20.0% > 5.0% over 10 requests"
    assert {r.choose(ctx(i)).target for i in range(100)} == {A}


def test_canary_rolls_back_when_p95_exceeds_slo() -> None:
    r = router(canary(percent=50, min_requests=20, promote_after=50, max_p95_ms=200))
    transitions = _drive(r, 400, lambda k: (500.0 if k % 10 == 0 else 50.0, True))
    assert len(transitions) == 1
    k, t = transitions[0]
    assert k == 20
    assert t.phase == "rolled-back"
    assert t.reason == "canary rolled back: p95 500 ms > 200 ms over 20 requests"


def test_canary_judges_only_the_recent_window() -> None:
    # 5 early failures, then all good: cumulative error rate at request 30 is
    # 16.7%, but the window of the last 10 is clean, so it promotes.
    r = router(canary(percent=50, min_requests=30, promote_after=30, window=10))
    transitions = _drive(r, 400, lambda k: (30.0, k >= 5))
    assert [(k, t.phase) for k, t in transitions] == [(30, "promoted")]


def test_canary_stable_failures_do_not_judge_the_challenger() -> None:
    r = router(canary(percent=50, min_requests=5, promote_after=1000))
    for _ in range(50):
        r.started(A)
        assert r.finished(A, latency_ms=900.0, ok=False) is None
    assert r.phase == "running"


def test_canary_transition_applies_to_state() -> None:
    t = Transition("promoted", 1, "canary promoted")
    assert t.apply(DeploymentState()) == DeploymentState(
        live=1, phase="promoted", previous=0, reason="canary promoted"
    )


def test_canary_routes_per_stored_phase() -> None:
    assert {router(canary(), phase="rolled-back").choose(ctx(i)).target for i in range(50)} == {A}
    assert {router(canary(), phase="promoted").choose(ctx(i)).target for i in range(50)} == {B}


def test_canary_promoted_does_not_judge_again() -> None:
    r = router(canary(min_requests=1, promote_after=1), phase="promoted")
    _observe(r, B, 10.0, 5, ok=False)
    assert r.phase == "promoted"


# -- shadow and blue-green ---------------------------------------------------


def test_shadow_serves_primary_and_copies_to_shadow() -> None:
    r = router(spec("shadow", (A, B)))
    assert r.choose(ctx()) == RouteDecision(A, f"shadow: primary, copy to {B}", shadow=B)
    live = router(spec("shadow", (A, B)), live=1).choose(ctx())
    assert (live.target, live.shadow) == (B, A)
    promoted = router(spec("shadow", (A, B)), phase="promoted").choose(ctx())
    assert (promoted.target, promoted.shadow) == (B, None)
    rolled = router(spec("shadow", (A, B)), phase="rolled-back", live=1).choose(ctx())
    assert (rolled.target, rolled.shadow) == (A, None)


def test_blue_green_routes_only_live() -> None:
    s = spec("blue-green", (A, B))
    assert {router(s).choose(ctx(i)).target for i in range(100)} == {A}
    green = router(s, live=1)
    assert {green.choose(ctx(i)).target for i in range(100)} == {B}
    assert green.choose(ctx()).reason == "blue-green: live=green"
    assert router(s).choose(ctx()).reason == "blue-green: live=blue"


def test_state_out_of_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="live model #2"):
        router(spec("blue-green", (A, B)), live=2)


# -- sticky ------------------------------------------------------------------


def test_sticky_same_key_same_target_across_routers() -> None:
    s = spec("weighted", weights=[0.5, 0.3, 0.2], sticky="user")
    first, other = router(s, seed=1), router(s, seed=99)
    for i in range(200):
        key = f"user-{i}"
        decision = first.choose(ctx(i, key))
        assert decision.reason.startswith("sticky: user hash, weighted")
        assert {first.choose(ctx(i, key)).target for _ in range(5)} == {decision.target}
        assert other.choose(ctx(i, key)).target == decision.target


def test_sticky_split_across_keys_matches_weights() -> None:
    r = router(spec("weighted", (A, B), weights=[0.7, 0.3], sticky="user"))
    n = 2000
    counts = Counter(r.choose(ctx(i, f"user-{i}")).target for i in range(n))
    assert abs(counts[A] / n - 0.7) < 0.03


def test_sticky_random_and_canary_split() -> None:
    n = 2000
    r = router(spec("random", sticky="key"))
    counts = Counter(r.choose(ctx(i, f"k{i}")).target for i in range(n))
    assert all(abs(counts[t] / n - 1 / 3) < 0.04 for t in (A, B, C))
    c = router(spec("canary", (A, B), sticky="user", canary=CanaryPolicy(percent=20)))
    decisions = [c.choose(ctx(i, f"u{i}")) for i in range(n)]
    assert abs(sum(d.target == B for d in decisions) / n - 0.2) < 0.03
    assert all(d.reason.startswith("sticky: user hash, canary") for d in decisions)


def test_sticky_only_moves_users_of_an_unhealthy_target() -> None:
    r = router(spec("random", sticky="user"))
    keys = [f"user-{i}" for i in range(300)]
    before = {k: r.choose(ctx(0, k)).target for k in keys}
    after = {k: r.choose(ctx(0, k), lambda t: t != C).target for k in keys}
    for k in keys:
        assert after[k] != C
        if before[k] != C:
            assert after[k] == before[k]


def test_sticky_needs_spec_sticky_and_a_key() -> None:
    plain = router(spec())  # a key without spec.sticky: ordinary draw
    assert "sticky" not in plain.choose(ctx(0, "user-1")).reason
    no_key = router(spec(sticky="user"))
    assert no_key.choose(ctx()).reason == "random: 1 of 3"


# -- fallbacks ---------------------------------------------------------------


def test_fallbacks_order() -> None:
    s = spec(fallbacks=["upstream:x", B, "upstream:y"])
    r = router(s)
    assert r.fallbacks(B, lambda t: t != A) == [C, A, "upstream:x", "upstream:y"]
    assert r.fallbacks(A) == [B, C, "upstream:x", "upstream:y"]
    assert r.fallbacks("upstream:x") == [A, B, C, "upstream:y"]
    decisions = r.fallback_decisions(A)
    assert decisions[0] == RouteDecision(B, f"fallback after {A} failed")


def test_fallback_targets_get_counters() -> None:
    r = router(spec(fallbacks=["upstream:x"]))
    r.started("upstream:x")
    r.finished("upstream:x", latency_ms=12.0, ok=False)
    snap = r.snapshot()["targets"]["upstream:x"]
    assert (snap["requests"], snap["errors"], snap["in_flight"]) == (1, 1, 0)


# -- manual promote / rollback ------------------------------------------------


@pytest.mark.parametrize("strategy", ["canary", "shadow"])
def test_manual_promote_and_rollback_of_rollouts(strategy: str) -> None:
    s = spec(strategy, (A, B))
    promoted = apply_manual(s, DeploymentState(), "promote")
    assert (promoted.phase, promoted.live, promoted.previous) == ("promoted", 1, 0)
    with pytest.raises(UserError, match="dep is already promoted"):
        apply_manual(s, promoted, "promote")
    rolled = apply_manual(s, promoted, "rollback")
    assert (rolled.phase, rolled.live, rolled.previous) == ("rolled-back", 0, 1)
    with pytest.raises(UserError, match="dep is already rolled back"):
        apply_manual(s, rolled, "rollback")
    direct = apply_manual(s, DeploymentState(), "rollback")
    assert (direct.phase, direct.live) == ("rolled-back", 0)
    assert router(s, **rolled.model_dump()).choose(ctx()).target == A


def test_manual_blue_green() -> None:
    s = spec("blue-green", (A, B))
    with pytest.raises(UserError, match="nothing to roll back to"):
        apply_manual(s, DeploymentState(), "rollback")
    green = apply_manual(s, DeploymentState(), "promote")
    assert (green.live, green.previous) == (1, 0)
    assert "green" in green.reason
    assert router(s, **green.model_dump()).choose(ctx()).target == B
    blue_again = apply_manual(s, green, "promote")
    assert (blue_again.live, blue_again.previous) == (0, 1)
    back = apply_manual(s, green, "rollback")
    assert (back.live, back.previous) == (0, None)
    with pytest.raises(UserError, match="nothing to roll back to"):
        apply_manual(s, back, "rollback")


@pytest.mark.parametrize("strategy", ["random", "weighted", "least-busy", "latency"])
@pytest.mark.parametrize("action", ["promote", "rollback"])
def test_manual_actions_rejected_for_balancers(strategy: str, action: Any) -> None:
    s = spec(strategy, weights=[1, 1, 1] if strategy == "weighted" else None)
    with pytest.raises(UserError, match=f"dep uses strategy {strategy}: nothing to {action}"):
        apply_manual(s, DeploymentState(), action)


# -- snapshot and threads ----------------------------------------------------


def test_snapshot_counts() -> None:
    r = router(canary(window=10))
    r.started(B)
    _observe(r, A, 10.0)
    _observe(r, A, 30.0, ok=False)
    snap = r.snapshot()
    assert (snap["deployment"], snap["strategy"], snap["phase"], snap["live"]) == (
        "dep",
        "canary",
        "running",
        0,
    )
    assert snap["targets"][A] == {
        "in_flight": 0,
        "requests": 2,
        "errors": 1,
        "ewma_ms": pytest.approx(0.2 * 30 + 0.8 * 10),
        "p95_ms": 30.0,
    }
    assert snap["targets"][B] == {
        "in_flight": 1,
        "requests": 0,
        "errors": 0,
        "ewma_ms": None,
        "p95_ms": None,
    }


@pytest.fixture
def eager_switching() -> Iterator[None]:
    """Switch threads as often as CPython allows, so unlocked updates race."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("eager_switching")
def test_threads_keep_counters_consistent() -> None:
    r = router(spec("least-busy"))
    threads_n, per_thread = 8, 2000
    barrier = threading.Barrier(threads_n)

    def work(worker: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            target = r.choose(ctx(i)).target
            r.started(target)
            r.finished(target, latency_ms=float(i % 7), ok=(i + worker) % 4 != 0)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    targets = r.snapshot()["targets"]
    assert sum(s["requests"] for s in targets.values()) == threads_n * per_thread
    assert sum(s["errors"] for s in targets.values()) == threads_n * per_thread // 4
    assert all(s["in_flight"] == 0 for s in targets.values())


@pytest.mark.usefixtures("eager_switching")
def test_threads_get_one_canary_transition() -> None:
    r = router(canary(percent=50, promote_after=100, window=20))
    got: list[Transition] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(200):
            r.started(B)
            t = r.finished(B, latency_ms=5.0, ok=True)
            if t is not None:
                with lock:
                    got.append(t)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [t.phase for t in got] == ["promoted"]
    assert r.snapshot()["targets"][B]["requests"] == 1600
