"""HTTP routers, one module per endpoint family; logic lives in
:mod:`llmline.gateway.serving`."""

from __future__ import annotations

from llmline.gateway.endpoints import chat, completions, embeddings, health, models

__all__ = ["chat", "completions", "embeddings", "health", "models"]
