"""The text encoder a knowledge base is built with: a tokenizer and an embedder.

Chunk sizes are counted in the encoder's own word pieces (the real MiniLM
tokenizer, not an approximation), and its name and dimension are stored next
to every index so that a knowledge base is never searched with vectors from
another model.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from llmline.errors import ConfigError

__all__ = ["MINILM_NAME", "Encoder", "MiniLMEncoder", "Vectors"]

Vectors = npt.NDArray[np.float32]
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Encoder(Protocol):
    """What ingest and search need from an embedding model."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Word pieces the model reads at once, its two special tokens included."""
        ...

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character ``(start, end)`` of each word piece of ``text``."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalised float32 row per text."""
        ...


class MiniLMEncoder:
    """The shipped all-MiniLM-L6-v2 (384 dimensions, a 256-piece window).

    The name and dimension are known without loading the model, so opening a
    knowledge base (and BM25-only search) stays cheap; the model loads on
    the first tokenisation or embedding and is checked against them then.
    """

    name = MINILM_NAME
    dim = 384
    max_tokens = 256

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                from llmline.evaluation.metrics import default_embedder

                model: Any = default_embedder()
                dim_of = getattr(model, "get_embedding_dimension", None) or (
                    model.get_sentence_embedding_dimension
                )
                if dim_of() != self.dim or model.max_seq_length != self.max_tokens:
                    raise ConfigError(
                        f"the installed MiniLM bundle has {dim_of()} dimensions and a "
                        f"{model.max_seq_length}-piece window; expected {self.dim} and "
                        f"{self.max_tokens}"
                    )
                self._model = model
            return self._model

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        tokenizer = self._loaded().tokenizer
        encoded = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return [(int(a), int(b)) for a, b in encoded["offset_mapping"]]

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._loaded().encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
