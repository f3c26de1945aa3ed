"""Exact response cache: a normalised request hash → the answer.

In-process LRU by default; Redis when ``gateway.redis_url`` is set, so
several gateway workers share it.  Values are JSON-serialisable dicts.
Keys include the deployment's pinned model versions and prompt version
(see :func:`request_key`), so a model change invalidates old entries.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["ExactCache", "LRUCache", "RedisCache", "request_key"]


def request_key(scope: str, payload: dict[str, Any]) -> str:
    """A stable hash of ``payload`` (keys sorted, whitespace-insensitive
    JSON) under ``scope`` (deployment, revision, key scope)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return f"llmline:cache:{scope}:{digest}"


class ExactCache(Protocol):
    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def set(self, key: str, value: dict[str, Any], ttl_s: float) -> None: ...

    async def close(self) -> None: ...


class LRUCache:
    """Bounded, TTL-aware, thread-safe in-process cache."""

    def __init__(self, max_entries: int = 4096, clock: Callable[[], float] = time.monotonic):
        self.max_entries = max_entries
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    async def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            expires, value = item
            if expires <= self._clock():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    async def set(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        with self._lock:
            self._items[key] = (self._clock() + ttl_s, value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    async def close(self) -> None:
        with self._lock:
            self._items.clear()


class RedisCache:
    """The same cache in Redis (``SET key value PX ttl``), shared by workers.

    A Redis outage must not fail requests: errors count as misses.
    """

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.Redis.from_url(url, socket_timeout=0.5)
        self.errors = 0

    async def get(self, key: str) -> dict[str, Any] | None:
        from redis.exceptions import RedisError

        try:
            raw = await self._client.get(key)
        except (RedisError, OSError):
            self.errors += 1
            return None
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    async def set(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        from redis.exceptions import RedisError

        try:
            await self._client.set(key, json.dumps(value), px=max(1, int(ttl_s * 1000)))
        except (RedisError, OSError):
            self.errors += 1

    async def close(self) -> None:
        await self._client.aclose()
