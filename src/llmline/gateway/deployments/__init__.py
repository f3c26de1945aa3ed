"""Deployments: the names clients call, what serves them and how traffic is split."""

from __future__ import annotations

from llmline.gateway.deployments.spec import (
    STRATEGIES,
    CachePolicy,
    CanaryPolicy,
    DeploymentSpec,
    DeploymentState,
    Strategy,
)
from llmline.gateway.deployments.store import (
    DeploymentEventInfo,
    DeploymentInfo,
    DeploymentStore,
    parse_spec,
)

__all__ = [
    "STRATEGIES",
    "CachePolicy",
    "CanaryPolicy",
    "DeploymentEventInfo",
    "DeploymentInfo",
    "DeploymentSpec",
    "DeploymentState",
    "DeploymentStore",
    "Strategy",
    "parse_spec",
]
