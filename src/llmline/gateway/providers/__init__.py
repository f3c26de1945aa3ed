"""Backends behind the gateway, found through the ``llmline.providers``
entry-point group (see :mod:`llmline.gateway.providers.base`)."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from llmline.errors import ConfigError
from llmline.gateway.providers.base import (
    BackendHealth,
    GenerationChunk,
    GenerationOutput,
    GenerationRequest,
    Provider,
    ProviderContext,
    ProviderFactory,
    split_target,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "BackendHealth",
    "GenerationChunk",
    "GenerationOutput",
    "GenerationRequest",
    "Provider",
    "ProviderContext",
    "ProviderFactory",
    "create_provider",
    "provider_names",
    "split_target",
]

ENTRY_POINT_GROUP = "llmline.providers"


@cache
def _factories() -> dict[str, ProviderFactory]:
    found: dict[str, ProviderFactory] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.load()
    return found


def provider_names() -> list[str]:
    return sorted(_factories())


def create_provider(target: str, context: ProviderContext) -> Provider:
    """A (not yet started) provider for ``target``."""
    scheme, _ = split_target(target)
    factory = _factories().get(scheme)
    if factory is None:
        known = ", ".join(provider_names()) or "none installed"
        raise ConfigError(f"no provider {scheme!r} for target {target!r} (known: {known})")
    return factory(target, context)
