"""Two-sample statistics of the drift report, in vectorised NumPy.

- :func:`mmd_test`: maximum mean discrepancy between two embedding samples
  with an RBF kernel (bandwidth by the median heuristic) and a permutation
  p-value.  All permutations are scored in one matrix product.
- :func:`psi` / :func:`psi_of_labels`: the population stability index of a
  numeric feature (bins at the reference's quantiles) or of categories.
- :func:`kmeans` / :func:`assign_clusters`: topic clusters of the reference
  embeddings (k-means++ seeding, Lloyd iterations; deterministic by seed).
- :func:`two_proportion_test`: rates such as refusals, with a two-sided
  z-test p-value.

Everything takes a ``seed``: a report is reproducible from its inputs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "MmdResult",
    "ProportionResult",
    "PsiResult",
    "assign_clusters",
    "bottom_k",
    "chi_square_p",
    "chi_square_sf",
    "kmeans",
    "mmd_test",
    "psi",
    "psi_of_labels",
    "subsample",
    "two_proportion_test",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# An empty bin would make PSI infinite; a share this small stands in for zero.
_PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class MmdResult:
    statistic: float  # biased MMD² estimate
    p_value: float
    bandwidth: float  # σ of exp(-d² / 2σ²)
    null: FloatArray  # MMD² of each permutation


@dataclass(frozen=True)
class PsiResult:
    statistic: float
    edges: FloatArray  # bin edges (numeric) or category ids (labels)
    reference_shares: FloatArray
    current_shares: FloatArray
    # Chi-square test of homogeneity of the bin counts: is the PSI more than
    # sampling noise (which, for small samples, alone exceeds 0.1)?
    p_value: float


@dataclass(frozen=True)
class ProportionResult:
    reference_rate: float
    current_rate: float
    p_value: float


def subsample(n: int, size: int, seed: int) -> IntArray:
    """Sorted indices of at most ``size`` of ``n`` items, chosen by ``seed``."""
    if n <= size:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=size, replace=False)).astype(np.int64)


def bottom_k(keys: Sequence[str], size: int, seed: int) -> IntArray:
    """Sorted indices of the ``size`` keys with the smallest seeded hash.

    A uniform random sample that is *consistent*: a key in the sample of a
    window stays in the sample of an overlapping window (as long as it is
    among the smallest there), so the sample of an hourly 24 h report is
    mostly last hour's, and its embeddings are cached.
    """
    if len(keys) <= size:
        return np.arange(len(keys), dtype=np.int64)
    prefix = f"{seed}:".encode()
    digests = b"".join(
        hashlib.blake2b(prefix + key.encode(), digest_size=8).digest() for key in keys
    )
    hashes = np.frombuffer(digests, dtype=">u8")
    return np.sort(np.argpartition(hashes, size)[:size]).astype(np.int64)


def _squared_distances(points: FloatArray) -> FloatArray:
    norms = np.einsum("ij,ij->i", points, points)
    d2 = norms[:, None] + norms[None, :] - 2.0 * (points @ points.T)
    np.maximum(d2, 0.0, out=d2)  # rounding can make a zero slightly negative
    return np.asarray(d2, dtype=np.float64)


def mmd_test(
    x: npt.ArrayLike, y: npt.ArrayLike, *, permutations: int = 200, seed: int = 0
) -> MmdResult:
    """MMD² of samples ``x`` (n × d) and ``y`` (m × d), and its permutation p-value.

    With weights ``w`` = 1/n on x's rows and -1/m on y's, the biased MMD² is
    ``wᵀ K w``; a permutation only moves the weights, so ``K @ W`` over a
    matrix of permuted weight columns scores them all at once.  The p-value
    counts the observed statistic as one of the permutations, so it is
    never zero.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, m = len(xs), len(ys)
    if n < 2 or m < 2:
        raise ValueError("each sample needs at least 2 points")
    d2 = _squared_distances(np.vstack([xs, ys]))
    off_diagonal = d2[np.triu_indices(n + m, k=1)]
    median = float(np.median(off_diagonal))
    sigma2 = median / 2.0 if median > 0 else 1.0  # median heuristic: 2σ² = median d²
    kernel = np.exp(-d2 / (2.0 * sigma2))
    base = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    rng = np.random.default_rng(seed)
    weights = np.empty((n + m, permutations + 1))
    weights[:, 0] = base
    for column in range(1, permutations + 1):
        weights[:, column] = rng.permutation(base)
    scores = np.einsum("ij,ij->j", weights, kernel @ weights)
    observed, null = float(scores[0]), scores[1:]
    p_value = (1.0 + float(np.sum(null >= observed - 1e-12))) / (permutations + 1.0)
    return MmdResult(max(observed, 0.0), p_value, math.sqrt(sigma2), null)


def _psi_from_counts(reference: FloatArray, current: FloatArray, edges: FloatArray) -> PsiResult:
    ref_share = reference / max(reference.sum(), 1.0)
    cur_share = current / max(current.sum(), 1.0)
    ref_floor, cur_floor = np.maximum(ref_share, _PSI_FLOOR), np.maximum(cur_share, _PSI_FLOOR)
    value = float(np.sum((cur_floor - ref_floor) * np.log(cur_floor / ref_floor)))
    return PsiResult(value, edges, ref_share, cur_share, chi_square_p(reference, current))


def chi_square_p(reference: FloatArray, current: FloatArray) -> float:
    """p-value of the chi-square test that two count vectors share one
    distribution (Wilson-Hilferty approximation of the chi-square tail,
    good to a few percent in the range a threshold cares about)."""
    table = np.vstack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    total = table.sum()
    dof = table.shape[1] - 1
    if dof < 1 or total == 0:
        return 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / total
    return chi_square_sf(float(np.sum((table - expected) ** 2 / expected)), dof)


def chi_square_sf(statistic: float, dof: int) -> float:
    """P(X ≥ statistic) for X ~ χ²(dof), by the Wilson-Hilferty cube-root
    normal approximation (no SciPy needed)."""
    scale = 2.0 / (9.0 * dof)
    z = ((max(statistic, 0.0) / dof) ** (1.0 / 3.0) - (1.0 - scale)) / math.sqrt(scale)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def psi(reference: npt.ArrayLike, current: npt.ArrayLike, *, bins: int = 10) -> PsiResult:
    """PSI of a numeric feature over bins cut at the reference's quantiles.

    Ties (many equal lengths) merge quantile edges, so there may be fewer
    than ``bins`` bins; the outer bins are open-ended.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("PSI needs values on both sides")
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=len(inner) + 1)
    cur_counts = np.bincount(np.searchsorted(inner, cur, side="right"), minlength=len(inner) + 1)
    return _psi_from_counts(ref_counts.astype(np.float64), cur_counts.astype(np.float64), inner)


def psi_of_labels(reference: npt.ArrayLike, current: npt.ArrayLike, *, k: int) -> PsiResult:
    """PSI of category shares (labels 0..k-1), e.g. topic clusters."""
    ref = np.asarray(reference, dtype=np.int64)
    cur = np.asarray(current, dtype=np.int64)
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("PSI needs labels on both sides")
    return _psi_from_counts(
        np.bincount(ref, minlength=k).astype(np.float64),
        np.bincount(cur, minlength=k).astype(np.float64),
        np.arange(k, dtype=np.float64),
    )


def assign_clusters(points: npt.ArrayLike, centroids: FloatArray) -> IntArray:
    """Index of the nearest centroid of each point."""
    values = np.asarray(points, dtype=np.float64)
    d2 = (
        np.einsum("ij,ij->i", values, values)[:, None]
        - 2.0 * values @ centroids.T
        + np.einsum("ij,ij->i", centroids, centroids)[None, :]
    )
    return np.asarray(np.argmin(d2, axis=1), dtype=np.int64)


def kmeans(points: npt.ArrayLike, k: int, *, seed: int = 0, iterations: int = 50) -> FloatArray:
    """Centroids of ``k`` clusters (fewer when there are fewer distinct points)."""
    values = np.asarray(points, dtype=np.float64)
    k = min(k, len(np.unique(values, axis=0)))
    if k < 1:
        raise ValueError("k-means needs at least one point")
    rng = np.random.default_rng(seed)
    centroids = values[[int(rng.integers(len(values)))]]
    while len(centroids) < k:  # k-means++: far points are likelier seeds
        nearest = np.min(((values[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2), axis=1)
        choice = rng.choice(len(values), p=nearest / nearest.sum())
        centroids = np.vstack([centroids, values[choice]])
    labels = assign_clusters(values, centroids)
    for _ in range(iterations):
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, values)
        counts = np.bincount(labels, minlength=k)[:, None]
        # A cluster that lost every point keeps its old centroid.
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        new_labels = assign_clusters(values, updated)
        centroids = updated
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
    return centroids


def two_proportion_test(
    reference_hits: int, reference_n: int, current_hits: int, current_n: int
) -> ProportionResult:
    """Rates of both sides and the two-sided p-value that they are equal."""
    if reference_n < 1 or current_n < 1:
        raise ValueError("both sides need at least one item")
    p1, p2 = reference_hits / reference_n, current_hits / current_n
    pooled = (reference_hits + current_hits) / (reference_n + current_n)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / reference_n + 1 / current_n))
    if spread == 0:
        return ProportionResult(p1, p2, 1.0 if p1 == p2 else 0.0)
    z = abs(p2 - p1) / spread
    return ProportionResult(p1, p2, math.erfc(z / math.sqrt(2)))
