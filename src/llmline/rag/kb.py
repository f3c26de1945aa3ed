"""Opening a knowledge base version and searching it.

``dense`` ranks chunks by the cosine of their vector with the query's,
``bm25`` by BM25 over their words, ``hybrid`` fuses both rankings with
reciprocal-rank fusion.  ``rerank`` re-orders a wider candidate set by the
cosine of each chunk's best embedding window; ``mmr`` picks the final ``k``
from it by maximal marginal relevance, trading relevance for diversity.
"""

from __future__ import annotations

import json
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from llmline.errors import ConfigError, IntegrityError, UserError
from llmline.rag.catalog import KnowledgeBaseInfo, get_version, local_folder
from llmline.rag.config import RagSettings
from llmline.rag.encoder import Encoder, MiniLMEncoder, Vectors
from llmline.rag.index import Ranked, VectorIndex, bm25_search, load_bm25
from llmline.rag.retrieval import Filters, filter_rows, mmr_select, rrf, window_rerank
from llmline.rag.stores import open_dense_index
from llmline.workspace import Workspace

__all__ = [
    "EXACT_FILTER_ROWS",
    "Hit",
    "KnowledgeBase",
    "Mode",
    "QueryTruncatedWarning",
    "open_version",
]

Mode = Literal["hybrid", "dense", "bm25"]
# With a filter leaving at most this many rows, score them all exactly
# rather than ask the ANN index to walk around the rows it may not return.
EXACT_FILTER_ROWS = 4096
MIN_CANDIDATES = 20
FUSION_DEPTH = 50


class QueryTruncatedWarning(UserWarning):
    """The query is longer than the embedding model's window."""


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    text: str
    score: float  # of the ranking that ordered the hits (see ``scores``)
    source: str  # the source document's URI
    title: str
    start: int  # character span of ``text`` in the source document's text
    end: int
    metadata: dict[str, Any] = field(default_factory=dict)
    # Every signal behind the rank: dense/bm25 score and rank, rrf, rerank, mmr.
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "score": self.score,
            "source": self.source,
            "title": self.title,
            "span": [self.start, self.end],
            "text": self.text,
            "metadata": self.metadata,
            "scores": self.scores,
        }


def open_version(workspace: Workspace, ref: str, encoder: Encoder | None = None) -> KnowledgeBase:
    info = get_version(workspace, ref)
    return KnowledgeBase(info, local_folder(workspace, info), encoder, workspace.settings.rag)


class KnowledgeBase:
    """One version of a knowledge base, its indexes memory-mapped; thread-safe."""

    def __init__(
        self,
        info: KnowledgeBaseInfo,
        folder: Path,
        encoder: Encoder | None = None,
        rag: RagSettings | None = None,
    ):
        self.info = info
        self.folder = folder
        self.encoder: Encoder = encoder or MiniLMEncoder()
        self.embedding = _check_embedding(info, folder, self.encoder)
        with open(folder / "chunks.jsonl", encoding="utf-8") as fh:
            self._chunks = [json.loads(line) for line in fh if line.strip()]
        self._metadata = [row["metadata"] for row in self._chunks]
        self._vectors: Vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        self._windows: Vectors = np.load(folder / "windows.npy", mmap_mode="r")
        self._bounds = np.asarray(
            [row["w0"] for row in self._chunks] + [self._chunks[-1]["w1"] if self._chunks else 0],
            dtype=np.int64,
        )
        self._dense_info: dict[str, Any] = info.manifest["index"]["dense"]
        # A FAISS file in the folder, or a pgvector table (``rag.vector_store``).
        self._dense: VectorIndex = open_dense_index(
            folder, self._dense_info, rag or RagSettings(), info.ref
        )
        total = self._dense.ntotal
        if self._dense.dim != self.encoder.dim or total != len(self._chunks):
            raise IntegrityError(
                f"{info.ref}: the dense index holds {total} vectors of "
                f"{self._dense.dim} dimensions; expected {len(self._chunks)} of {self.encoder.dim}"
            )
        self._bm25: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def ref(self) -> str:
        return self.info.ref

    def __len__(self) -> int:
        return len(self._chunks)

    def __repr__(self) -> str:
        return f"KnowledgeBase({self.ref!r}, chunks={len(self)})"

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the index references (their memory maps close with them)."""
        self._bm25 = None
        close_dense = getattr(self._dense, "close", None)
        if close_dense is not None:  # a pgvector connection
            close_dense()

    # -- search ----------------------------------------------------------------------
    def search(
        self,
        query: str,
        k: int = 5,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
        *,
        mmr: bool = False,
        rerank: bool = False,
        mmr_lambda: float = 0.5,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query``.

        ``filters`` restrict by chunk metadata (``source``, ``type``,
        ``title``, ``section``, ``page``): a value, a glob, or a list of them.
        ``rerank`` and ``mmr`` work on a wider candidate set (``max(4k, 20)``).
        """
        _validate(query, k, mode, mmr_lambda)
        allowed = filter_rows(self._metadata, filters) if filters else None
        if allowed is not None and len(allowed) == 0:
            return []
        pool = max(4 * k, MIN_CANDIDATES) if (mmr or rerank) else k
        qvec = self.query_vector(query) if (mode != "bm25" or mmr or rerank) else None
        rankings = self._rankings(query, qvec, mode, pool, allowed)
        ranked = rrf(list(rankings.values())) if mode == "hybrid" else rankings[mode]
        details = _details(rankings, ranked, mode)
        ranked = ranked[:pool]
        if rerank and qvec is not None:
            ranked = window_rerank(qvec, [r for r, _ in ranked], self._windows, self._bounds)
            for row, score in ranked:
                details[row]["rerank"] = score
        if mmr and qvec is not None:
            scores = dict(ranked)
            picked = mmr_select(qvec, [r for r, _ in ranked], self._vectors, k, mmr_lambda)
            for row, objective in picked:
                details[row]["mmr"] = objective
            ranked = [(row, scores[row]) for row, _ in picked]
        return [self._hit(row, score, details[row]) for row, score in ranked[:k]]

    def query_vector(self, query: str) -> Vectors:
        """The query's embedding (1 x dim); a query longer than the model's
        window is cut to fit, with a :class:`QueryTruncatedWarning`."""
        spans = self.encoder.token_spans(query)
        limit = self.encoder.max_tokens - 2  # [CLS] and [SEP] take two
        if len(spans) > limit:
            warnings.warn(
                f"query is {len(spans)} word pieces, longer than the {self.encoder.max_tokens}"
                f"-piece window of {self.encoder.name}: the dense search reads only the first "
                f"{limit} (BM25 reads all of it)",
                QueryTruncatedWarning,
                stacklevel=3,
            )
            query = query[: spans[limit - 1][1]]
        vector = self.encoder.embed([query])
        return np.asarray(vector, dtype=np.float32).reshape(1, -1)

    def _rankings(
        self,
        query: str,
        qvec: Vectors | None,
        mode: Mode,
        pool: int,
        allowed: npt.NDArray[np.int64] | None,
    ) -> dict[str, Ranked]:
        fetch = max(pool, FUSION_DEPTH) if mode == "hybrid" else pool
        out: dict[str, Ranked] = {}
        if mode in ("dense", "hybrid") and qvec is not None:
            out["dense"] = self._dense_ranked(qvec, fetch, allowed)
        if mode in ("bm25", "hybrid"):
            mask = None
            if allowed is not None:
                mask = np.zeros(len(self), dtype=np.float32)
                mask[allowed] = 1.0
            out["bm25"] = bm25_search(self._bm25_index(), query, fetch, len(self), mask)
        return out

    def _dense_ranked(self, qvec: Vectors, n: int, allowed: npt.NDArray[np.int64] | None) -> Ranked:
        if allowed is not None and len(allowed) <= EXACT_FILTER_ROWS:
            sims = np.asarray(self._vectors[allowed], dtype=np.float32) @ qvec.reshape(-1)
            order = np.argsort(-sims, kind="stable")[:n]
            return [(int(allowed[i]), float(sims[i])) for i in order]
        return self._dense.search(qvec, n, allowed)

    def _bm25_index(self) -> Any:
        with self._lock:
            if self._bm25 is None:
                self._bm25 = load_bm25(self.folder / "bm25")
            return self._bm25

    def _hit(self, row: int, score: float, details: dict[str, float]) -> Hit:
        chunk = self._chunks[row]
        meta = dict(chunk["metadata"])
        return Hit(
            chunk_id=chunk["id"],
            text=chunk["text"],
            score=score,
            source=meta["source"],
            title=meta["title"],
            start=chunk["start"],
            end=chunk["end"],
            metadata=meta,
            scores=details,
        )


def _validate(query: str, k: int, mode: str, mmr_lambda: float) -> None:
    if not query.strip():
        raise UserError("the query is empty")
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    if mode not in get_args(Mode):
        raise UserError(f"unknown search mode {mode!r} (use one of: {', '.join(get_args(Mode))})")
    if not 0.0 <= mmr_lambda <= 1.0:
        raise UserError(f"mmr_lambda must be between 0 and 1, got {mmr_lambda}")


def _details(rankings: dict[str, Ranked], fused: Ranked, mode: Mode) -> dict[int, dict[str, float]]:
    details: dict[int, dict[str, float]] = {}
    for name, ranking in rankings.items():
        for rank, (row, score) in enumerate(ranking, start=1):
            details.setdefault(row, {})[name] = score
            details[row][f"{name}_rank"] = rank
    if mode == "hybrid":
        for row, score in fused:
            details.setdefault(row, {})["rrf"] = score
    return details


def _check_embedding(info: KnowledgeBaseInfo, folder: Path, encoder: Encoder) -> dict[str, Any]:
    path = folder / "embedding.json"
    try:
        stored: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        model, dim = str(stored["model"]), int(stored["dim"])
    except (OSError, ValueError, KeyError, TypeError):
        raise IntegrityError(f"{info.ref}: {path.name} is missing or unreadable") from None
    if model != encoder.name or dim != encoder.dim:
        raise ConfigError(
            f"knowledge base {info.ref} was built with embedding model {model} ({dim} dims), "
            f"but the embedder in use is {encoder.name} ({encoder.dim} dims): open it with "
            "the model it was built with, or re-ingest it with this one"
        )
    return stored
