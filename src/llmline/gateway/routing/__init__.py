"""Routing of requests to a deployment's targets: load-balancing strategies
and rollouts (canary, shadow, blue-green).  See :mod:`.strategies`."""

from __future__ import annotations

from llmline.gateway.routing.rollouts import ManualAction, Transition, apply_manual, judge_canary
from llmline.gateway.routing.stats import Outcome, TargetStats
from llmline.gateway.routing.strategies import (
    Health,
    RouteContext,
    RouteDecision,
    Router,
    sticky_unit,
)

__all__ = [
    "Health",
    "ManualAction",
    "Outcome",
    "RouteContext",
    "RouteDecision",
    "Router",
    "TargetStats",
    "Transition",
    "apply_manual",
    "judge_canary",
    "sticky_unit",
]
