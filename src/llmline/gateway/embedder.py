"""The shipped MiniLM sentence embedder, loaded on first use (a few
seconds), for ``/v1/embeddings`` and the semantic cache."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["MiniLMEmbedder"]


class MiniLMEmbedder:
    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                from llmline.evaluation.metrics import default_embedder

                self._model = default_embedder()
            return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        vectors = self.model().encode(
            list(texts), convert_to_numpy=True, show_progress_bar=False, normalize_embeddings=True
        )
        return np.asarray(vectors, dtype=np.float32)
