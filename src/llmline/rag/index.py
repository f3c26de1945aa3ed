"""The two indexes of a knowledge base: dense vectors in FAISS and BM25 terms.

Dense: an exact inner-product index (``IndexFlatIP``; cosine, since the
vectors are normalised) below ``APPROX_THRESHOLD`` vectors, an inverted-file
index (``IndexIVFFlat``) above it, where exact search would cost a full scan
per query.  IVF over HNSW because it builds an order of magnitude faster
for the same recall on MiniLM vectors (bench/rag_vectors.py: at 100k chunks
IVF 6,038 chunks/s and recall@5 0.997; HNSW M=32 508 chunks/s) and stores
the vectors themselves, so nothing is approximated but the choice of lists
to scan.  Knowledge bases written with the earlier HNSW index still load
and search.  Both kinds are written with ``faiss.write_index`` and read
memory-mapped.

BM25: ``bm25s`` over words of two or more letters or digits, lower-cased,
English stop words removed except Python's keywords (``with``, ``for``,
``is``, ``in`` name statements and operators in programming text), with a
light plural stemmer (Harman's "S" stemmer: ``managers`` finds
``manager``); the index is saved as numpy arrays that load memory-mapped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from llmline.rag.encoder import Vectors

__all__ = [
    "APPROX_THRESHOLD",
    "BM25_TOKENIZER",
    "FaissIndex",
    "Ranked",
    "VectorIndex",
    "bm25_search",
    "bm25_terms",
    "build_bm25",
    "build_dense",
    "dense_search",
    "dense_spec",
    "load_bm25",
    "load_dense",
]

APPROX_THRESHOLD = 20_000
# Lists of the IVF index: about 4 * sqrt(n), each scanned list ~ n / nlist vectors.
IVF_LISTS_PER_SQRT = 4
IVF_MIN_PROBES = 16
# k-means trains on a sample of this many vectors per list: FAISS warns below 39,
# and more buys no recall on MiniLM vectors (bench/rag_vectors.py) but costs
# training time linear in the sample.
IVF_TRAIN_PER_LIST = 40
BM25_TOKENIZER = "words>=2, lower, english stopwords but python keywords, harman-s-stemmer"
# Ranked results: (row, score) pairs, best first.
Ranked = list[tuple[int, float]]

_WORD = re.compile(r"(?u)\b\w\w+\b")


def _bm25s() -> Any:
    import bm25s  # type: ignore[import-untyped]

    return bm25s


def _faiss() -> Any:
    # Typed loosely: faiss's stubs lack the search-parameter classes used here.
    import faiss

    return faiss


def _stopwords() -> frozenset[str]:
    import keyword

    python = {*keyword.kwlist, *keyword.softkwlist}
    return frozenset(w for w in _bm25s().tokenization.STOPWORDS_EN if w not in python)


_STOPWORDS: frozenset[str] | None = None


def _stem(word: str) -> str:
    """Harman's S stemmer (1991): plural endings only, no over-stemming."""
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


def bm25_terms(text: str) -> list[str]:
    global _STOPWORDS  # noqa: PLW0603 - loaded once, on first use (bm25s is heavy)
    if _STOPWORDS is None:
        _STOPWORDS = _stopwords()
    stop = _STOPWORDS
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in stop]


# -- dense ----------------------------------------------------------------------------
def dense_spec(count: int, threshold: int = APPROX_THRESHOLD) -> dict[str, Any]:
    """The index :func:`build_dense` makes for ``count`` vectors."""
    if count < threshold:
        return {"type": "flat-ip", "metric": "inner_product"}
    nlist = max(1, min(count, round(IVF_LISTS_PER_SQRT * count**0.5)))
    nprobe = min(nlist, max(IVF_MIN_PROBES, nlist // 64))
    return {"type": "ivf-flat", "metric": "inner_product", "nlist": nlist, "nprobe": nprobe}


def build_dense(vectors: Vectors, path: Path, spec: dict[str, Any]) -> None:
    """Write the FAISS index (of :func:`dense_spec`'s ``spec``) of ``vectors`` to ``path``."""
    faiss = _faiss()
    dim = int(vectors.shape[1])
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    if spec["type"] == "flat-ip":
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = int(spec["nlist"])
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(_training_sample(data, nlist * IVF_TRAIN_PER_LIST))
    index.add(data)
    faiss.write_index(index, str(path))


def _training_sample(data: Vectors, size: int) -> Vectors:
    if len(data) <= size:
        return data
    # Fixed seed: the same chunks give the same index file (and content hash).
    rows = np.random.default_rng(0).choice(len(data), size, replace=False)
    return np.ascontiguousarray(data[np.sort(rows)])


def load_dense(path: Path) -> Any:
    faiss = _faiss()

    # Both index types this module writes support memory-mapped reads: the
    # vectors stay in the page cache, shared by every process that opens it.
    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP)


def dense_search(
    index: Any,
    info: dict[str, Any],
    query: Vectors,
    n: int,
    allowed: npt.NDArray[np.int64] | None = None,
) -> Ranked:
    """The ``n`` nearest rows to ``query`` (a 1 x dim array), among ``allowed``."""
    faiss = _faiss()

    n = min(n, index.ntotal if allowed is None else len(allowed))
    if n <= 0:
        return []
    selector = faiss.IDSelectorBatch(allowed) if allowed is not None else None
    if info["type"] == "ivf-flat":
        params = faiss.SearchParametersIVF(nprobe=int(info["nprobe"]), sel=selector)
    elif info["type"] == "hnsw-flat":  # knowledge bases ingested before IVF
        params = faiss.SearchParametersHNSW(efSearch=max(int(info["ef_search"]), n), sel=selector)
    else:
        params = faiss.SearchParameters(sel=selector)
    scores, rows = index.search(np.ascontiguousarray(query, dtype=np.float32), n, params=params)
    return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]


@runtime_checkable
class VectorIndex(Protocol):
    """A dense index of one knowledge base version: rows are chunk numbers,
    scores are cosines (higher is better).  FAISS and pgvector implement it."""

    @property
    def dim(self) -> int: ...

    @property
    def ntotal(self) -> int: ...

    def add(self, vectors: Vectors) -> None:
        """Append ``vectors`` (L2-normalised); they get rows ``ntotal, ntotal + 1, ...``."""
        ...

    def search(
        self, query: Vectors, n: int, allowed: npt.NDArray[np.int64] | None = None
    ) -> Ranked:
        """The ``n`` nearest rows to ``query`` (1 x dim), among ``allowed``."""
        ...


class FaissIndex:
    """A FAISS index (flat or IVF, per ``info``) as a :class:`VectorIndex`."""

    def __init__(self, index: Any, info: dict[str, Any]) -> None:
        self.index = index
        self.info = info

    @classmethod
    def load(cls, path: Path, info: dict[str, Any]) -> FaissIndex:
        return cls(load_dense(path), info)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: Vectors) -> None:
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(
        self, query: Vectors, n: int, allowed: npt.NDArray[np.int64] | None = None
    ) -> Ranked:
        return dense_search(self.index, self.info, query, n, allowed)


# -- BM25 -----------------------------------------------------------------------------
def build_bm25(texts: Sequence[str], folder: Path) -> dict[str, Any]:
    retriever = _bm25s().BM25()
    # bm25s needs one non-empty token list per document; a chunk made only
    # of stop words gets an empty-string term that no query contains.
    corpus = [bm25_terms(t) or [""] for t in texts]
    retriever.index(corpus, show_progress=False)
    retriever.save(str(folder), show_progress=False)
    return {
        "type": "bm25s",
        "method": retriever.method,
        "k1": retriever.k1,
        "b": retriever.b,
        "tokenizer": BM25_TOKENIZER,
    }


def load_bm25(folder: Path) -> Any:
    return _bm25s().BM25.load(str(folder), mmap=True, show_progress=False, verbosity=0)


def bm25_search(
    retriever: Any, query: str, n: int, count: int, mask: npt.NDArray[np.float32] | None = None
) -> Ranked:
    """The ``n`` best-scoring rows for ``query`` (rows with no query term omitted);
    ``count`` is the number of rows, ``mask`` 1.0 for rows a filter allows."""
    vocab: dict[str, int] = retriever.vocab_dict
    terms = [t for t in bm25_terms(query) if t in vocab]
    n = min(n, count)
    if not terms or n <= 0:
        return []
    rows, scores = retriever.retrieve(
        [terms], k=n, show_progress=False, n_threads=1, weight_mask=mask
    )
    return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if s > 0]
