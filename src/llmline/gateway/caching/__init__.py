"""Response caches of the gateway: exact (LRU or Redis) and semantic."""

from __future__ import annotations

from llmline.gateway.caching.exact import ExactCache, LRUCache, RedisCache, request_key
from llmline.gateway.caching.semantic import Embedder, SemanticCache, SemanticHit

__all__ = [
    "Embedder",
    "ExactCache",
    "LRUCache",
    "RedisCache",
    "SemanticCache",
    "SemanticHit",
    "request_key",
]
