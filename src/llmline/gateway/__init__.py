"""The serving gateway: an OpenAI-compatible API in front of registered
models and upstream servers, with deployments, rollout strategies, caching,
safety attributes and citations.

Import is light: the web stack loads when :func:`build_app` is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmline.gateway.config import EmbeddedSettings, GatewaySettings, UpstreamSettings
from llmline.gateway.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    GatewayError,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = [
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "EmbeddedSettings",
    "GatewayError",
    "GatewaySettings",
    "UpstreamSettings",
    "build_app",
]


def build_app(*args: Any, **kwargs: Any) -> FastAPI:
    """See :func:`llmline.gateway.app.build_app`."""
    from llmline.gateway.app import build_app as build

    return build(*args, **kwargs)
