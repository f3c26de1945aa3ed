"""The serving gateway: an OpenAI-compatible API in front of registered
models and upstream servers, with deployments, rollout strategies, caching,
safety attributes and citations.

Import is light: the web stack loads when :func:`build_app` is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmline.gateway.config import EmbeddedSettings, GatewaySettings, UpstreamSettings
from llmline.gateway.deployments import (
    DeploymentInfo,
    DeploymentSpec,
    DeploymentState,
    DeploymentStore,
)
from llmline.gateway.deployments.api import (
    create_deployment,
    promote_deployment,
    rollback_deployment,
)
from llmline.gateway.errors import (
    BackendError,
    BackendRateLimited,
    BackendTimeout,
    BackendUnavailable,
    GatewayError,
)
from llmline.gateway.providers import (
    BackendHealth,
    GenerationChunk,
    GenerationOutput,
    GenerationRequest,
    Provider,
    ProviderContext,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "BackendError",
    "BackendHealth",
    "BackendRateLimited",
    "BackendTimeout",
    "BackendUnavailable",
    "DeploymentInfo",
    "DeploymentSpec",
    "DeploymentState",
    "DeploymentStore",
    "EmbeddedSettings",
    "GatewayError",
    "GatewaySettings",
    "GenerationChunk",
    "GenerationOutput",
    "GenerationRequest",
    "Provider",
    "ProviderContext",
    "UpstreamSettings",
    "build_app",
    "create_deployment",
    "promote_deployment",
    "rollback_deployment",
]


def build_app(*args: Any, **kwargs: Any) -> FastAPI:
    """The gateway app; see :func:`llmline.gateway.app.build_app`."""
    from llmline.gateway.app import build_app as build

    return build(*args, **kwargs)
