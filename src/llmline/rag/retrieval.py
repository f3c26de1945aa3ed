"""Ranking arithmetic of knowledge-base search: metadata filters,
reciprocal-rank fusion, maximal marginal relevance and the window rerank."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from llmline.errors import UserError
from llmline.rag.encoder import Vectors
from llmline.rag.index import Ranked

__all__ = ["RRF_K", "FilterValue", "Filters", "filter_rows", "mmr_select", "rrf", "window_rerank"]

RRF_K = 60  # the constant of Cormack et al. (2009); damps the top ranks' weight
FilterValue = str | int | Sequence[str | int]
Filters = Mapping[str, FilterValue]


def filter_rows(metadata: Sequence[Mapping[str, Any]], filters: Filters) -> npt.NDArray[np.int64]:
    """Rows whose metadata matches every filter.

    A filter value matches a field equal to it (compared as text); a value
    with ``*``, ``?`` or ``[`` is a glob (``source="*/guide/*"``); a list
    matches any of its values.
    """
    known = sorted({key for row in metadata for key in row})
    unknown = sorted(set(filters) - set(known))
    if unknown:
        raise UserError(f"unknown filter field(s) {', '.join(unknown)} (known: {', '.join(known)})")
    tests = {key: _matcher(value) for key, value in filters.items()}
    rows = [
        i
        for i, row in enumerate(metadata)
        if all(key in row and test(str(row[key])) for key, test in tests.items())
    ]
    return np.asarray(rows, dtype=np.int64)


def _matcher(value: FilterValue) -> Any:
    values = [value] if isinstance(value, str | int) else list(value)
    exact = {str(v) for v in values if not _is_glob(str(v))}
    globs = [str(v) for v in values if _is_glob(str(v))]
    return lambda field: field in exact or any(fnmatch.fnmatchcase(field, g) for g in globs)


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def rrf(rankings: Sequence[Ranked], k: int = RRF_K) -> Ranked:
    """Reciprocal-rank fusion: each row scores the sum of 1 / (k + rank)."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (row, _score) in enumerate(ranking, start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def window_rerank(
    query: Vectors, candidates: Sequence[int], windows: Vectors, bounds: npt.NDArray[np.int64]
) -> Ranked:
    """Candidates by the cosine of their best-matching embedding window.

    A chunk longer than the model's window is embedded as several windows
    whose mean is its index vector; the best single window is a sharper
    relevance signal than that mean, and a different one from BM25's.
    """
    q = query.reshape(-1)
    scored = []
    for row in candidates:
        sims = windows[bounds[row] : bounds[row + 1]] @ q
        scored.append((int(row), float(sims.max()) if len(sims) else -1.0))
    return sorted(scored, key=lambda item: (-item[1], item[0]))


def mmr_select(
    query: Vectors, candidates: Sequence[int], vectors: Vectors, k: int, lam: float = 0.5
) -> list[tuple[int, float]]:
    """Maximal marginal relevance (Carbonell & Goldstein, 1998): pick ``k`` of
    ``candidates``, each maximising ``lam * sim(query) - (1 - lam) * max sim(picked)``.

    Returns ``(row, mmr score)`` in pick order."""
    if not candidates:
        return []
    cand = np.asarray(candidates, dtype=np.int64)
    vecs = np.asarray(vectors[cand], dtype=np.float32)
    relevance = vecs @ query.reshape(-1)
    picked: list[int] = []
    out: list[tuple[int, float]] = []
    redundancy = np.full(len(cand), -np.inf, dtype=np.float32)
    for _ in range(min(k, len(cand))):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        objective = lam * relevance - (1.0 - lam) * penalty
        objective[picked] = -np.inf
        best = int(np.argmax(objective))
        picked.append(best)
        out.append((int(cand[best]), float(objective[best])))
        redundancy = np.maximum(redundancy, vecs @ vecs[best])
    return out
