"""Rollout decisions: the automatic canary verdict and the manual
``llmline deploy promote`` / ``llmline deploy rollback`` actions.

Both produce a new :class:`DeploymentState`; the gateway persists it and
rebuilds the deployment's router from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from llmline.errors import ConfigError, UserError
from llmline.gateway.deployments.spec import CanaryPolicy, DeploymentSpec, DeploymentState, Phase
from llmline.gateway.routing.stats import Outcome, p95

__all__ = [
    "COLOURS",
    "ManualAction",
    "Transition",
    "apply_manual",
    "check_state",
    "judge_canary",
]

ManualAction = Literal["promote", "rollback"]
# Index into spec.models of a blue-green deployment.
COLOURS = ("blue", "green")


@dataclass(frozen=True)
class Transition:
    """An automatic rollout decision the gateway persists."""

    phase: Phase
    live: int
    reason: str

    def apply(self, state: DeploymentState) -> DeploymentState:
        """The state after this transition; ``previous`` records the old live model."""
        return DeploymentState(
            live=self.live, phase=self.phase, previous=state.live, reason=self.reason
        )


def _ms(value: float) -> str:
    text = f"{value:.1f}"
    return text.removesuffix(".0")


def _breaches(policy: CanaryPolicy, error_rate: float, p95_ms: float | None) -> list[str]:
    found = []
    if error_rate > policy.max_error_rate:
        found.append(f"error rate {error_rate:.1%} > {policy.max_error_rate:.1%}")
    if policy.max_p95_ms is not None and p95_ms is not None and p95_ms > policy.max_p95_ms:
        found.append(f"p95 {_ms(p95_ms)} ms > {_ms(policy.max_p95_ms)} ms")
    return found


def judge_canary(policy: CanaryPolicy, seen: int, recent: Sequence[Outcome]) -> Transition | None:
    """Verdict on a running canary after one more challenger request.

    ``seen`` counts the challenger requests finished since the rollout (or
    the router) started; ``recent`` holds at least the last ``policy.window``
    of them.  The SLO is judged over that window only, so early errors that
    were fixed stop counting once enough good requests follow.
    """
    window = list(recent)[-policy.window :]
    if not window:
        return None
    n = len(window)
    error_rate = sum(not o.ok for o in window) / n
    p95_ms = p95([o.latency_ms for o in window])
    breaches = _breaches(policy, error_rate, p95_ms)
    if breaches and seen >= policy.min_requests:
        reason = f"canary rolled back: {' and '.join(breaches)} over {n} requests"
        return Transition("rolled-back", 0, reason)
    if not breaches and seen >= policy.promote_after:
        latency = f", p95 {_ms(p95_ms)} ms" if p95_ms is not None else ""
        reason = (
            f"canary promoted after {seen} requests within SLO (errors {error_rate:.1%}{latency})"
        )
        return Transition("promoted", 1, reason)
    return None


def check_state(spec: DeploymentSpec, state: DeploymentState) -> None:
    """Reject a stored state that does not fit the spec (e.g. the spec lost a model)."""
    if not 0 <= state.live < len(spec.models):
        raise ConfigError(
            f"deployment {spec.name}: its stored state names live model #{state.live} "
            f"but the deployment has {len(spec.models)} model(s)"
        )


def apply_manual(
    spec: DeploymentSpec, state: DeploymentState, action: ManualAction
) -> DeploymentState:
    """The state after ``llmline deploy promote`` or ``llmline deploy rollback``.

    Canary and shadow: promote hands all traffic to the challenger, rollback
    to the stable model.  Blue-green: promote switches the live colour,
    rollback restores the colour live before the last switch.
    """
    check_state(spec, state)
    if spec.strategy in ("canary", "shadow"):
        return _manual_rollout(spec, state, action)
    if spec.strategy == "blue-green":
        return _manual_blue_green(spec, state, action)
    raise UserError(
        f"deployment {spec.name} uses strategy {spec.strategy}: nothing to {action}; "
        "only canary, shadow and blue-green deployments have a rollout"
    )


def _manual_rollout(
    spec: DeploymentSpec, state: DeploymentState, action: ManualAction
) -> DeploymentState:
    stable, challenger = spec.models
    if action == "promote":
        if state.phase == "promoted":
            raise UserError(
                f"deployment {spec.name} is already promoted: {challenger} serves all traffic"
            )
        return DeploymentState(
            live=1,
            phase="promoted",
            previous=state.live,
            reason=f"promoted manually: all traffic to {challenger}",
        )
    if state.phase == "rolled-back":
        raise UserError(
            f"deployment {spec.name} is already rolled back: {stable} serves all traffic"
        )
    return DeploymentState(
        live=0,
        phase="rolled-back",
        previous=state.live,
        reason=f"rolled back manually: all traffic to {stable}",
    )


def _manual_blue_green(
    spec: DeploymentSpec, state: DeploymentState, action: ManualAction
) -> DeploymentState:
    old = COLOURS[state.live]
    if action == "promote":
        new = 1 - state.live
        return state.model_copy(
            update={
                "live": new,
                "previous": state.live,
                "reason": f"promoted {COLOURS[new]} ({spec.models[new]}), was {old}",
            }
        )
    if state.previous not in (0, 1) or state.previous == state.live:
        raise UserError(
            f"deployment {spec.name} has nothing to roll back to: "
            f"{old} ({spec.models[state.live]}) has been live since it was created "
            "or since the last rollback"
        )
    back = 1 - state.live
    # previous is cleared: a second rollback would redo the switch, which is
    # what promote is for.
    return state.model_copy(
        update={
            "live": back,
            "previous": None,
            "reason": f"rolled back to {COLOURS[back]} ({spec.models[back]}), was {old}",
        }
    )
