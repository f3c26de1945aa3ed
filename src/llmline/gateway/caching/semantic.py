"""Semantic cache: answer a question with the stored answer to a similar one.

Opt-in per deployment (``cache.semantic``).  Entries live in one bucket per
*scope* (deployment + its pinned models + caller scope), so answers never
cross deployments, model versions, or API keys that must not share.
Vectors are unit-normalised MiniLM embeddings; similarity is their dot
product (cosine).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["Embedder", "SemanticCache", "SemanticHit"]


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        """One unit-length row per text."""
        ...


@dataclass(frozen=True)
class SemanticHit:
    value: dict[str, Any]
    similarity: float


class _Bucket:
    def __init__(self, dim: int) -> None:
        self.vectors = np.zeros((0, dim), dtype=np.float32)
        self.values: list[dict[str, Any]] = []
        self.expires: list[float] = []


class SemanticCache:
    def __init__(
        self,
        embedder: Embedder,
        *,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._embedder = embedder
        self.max_entries = max_entries
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def embed(self, text: str) -> np.ndarray[Any, Any]:
        return np.asarray(self._embedder.embed([text])[0], dtype=np.float32)

    def lookup(
        self, scope: str, vector: np.ndarray[Any, Any], threshold: float
    ) -> SemanticHit | None:
        with self._lock:
            bucket = self._buckets.get(scope)
            if bucket is None or not bucket.values:
                return None
            self._expire(bucket)
            if not bucket.values:
                return None
            sims = bucket.vectors @ vector
            best = int(np.argmax(sims))
            if float(sims[best]) < threshold:
                return None
            return SemanticHit(bucket.values[best], float(sims[best]))

    def store(
        self, scope: str, vector: np.ndarray[Any, Any], value: dict[str, Any], ttl_s: float
    ) -> None:
        with self._lock:
            bucket = self._buckets.setdefault(scope, _Bucket(vector.shape[0]))
            bucket.vectors = np.vstack([bucket.vectors, vector[None, :]])
            bucket.values.append(value)
            bucket.expires.append(self._clock() + ttl_s)
            if len(bucket.values) > self.max_entries:
                # Oldest first: entries were appended in time order.
                bucket.vectors = bucket.vectors[1:]
                bucket.values.pop(0)
                bucket.expires.pop(0)

    def drop_scopes(self, prefix: str) -> None:
        """Forget every scope starting with ``prefix`` (a deployment changed)."""
        with self._lock:
            for scope in [s for s in self._buckets if s.startswith(prefix)]:
                del self._buckets[scope]

    def _expire(self, bucket: _Bucket) -> None:
        now = self._clock()
        keep = [i for i, t in enumerate(bucket.expires) if t > now]
        if len(keep) != len(bucket.expires):
            bucket.vectors = bucket.vectors[keep]
            bucket.values = [bucket.values[i] for i in keep]
            bucket.expires = [bucket.expires[i] for i in keep]
