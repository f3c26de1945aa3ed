"""The drift report's statistics: MMD permutation test, PSI, chi-square,
k-means and rate tests, on synthetic samples with fixed seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmline.monitoring import drift_stats as stats

SEEDS = range(10)


def _gaussians(seed: int, shift: float, n: int = 150, dim: int = 8) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    y = rng.normal(size=(n, dim))
    y[:, 0] += shift
    return x, y


def test_mmd_has_power_against_a_shift_and_holds_its_level_without_one() -> None:
    shifted = [stats.mmd_test(*_gaussians(s, 0.8), seed=s).p_value for s in SEEDS]
    same = [stats.mmd_test(*_gaussians(s, 0.0), seed=s).p_value for s in SEEDS]
    assert all(p < 0.01 for p in shifted), shifted
    # At the 5 % level, at most one false alarm in ten (the expectation is 0.5).
    assert sum(p < 0.05 for p in same) <= 1, same


def test_mmd_is_reproducible_and_reports_its_null() -> None:
    x, y = _gaussians(3, 0.3)
    a = stats.mmd_test(x, y, permutations=50, seed=7)
    b = stats.mmd_test(x, y, permutations=50, seed=7)
    assert (a.statistic, a.p_value, a.bandwidth) == (b.statistic, b.p_value, b.bandwidth)
    assert a.null.shape == (50,) and a.p_value >= 1 / 51
    with pytest.raises(ValueError, match="at least 2"):
        stats.mmd_test(x[:1], y)


def test_psi_is_small_for_one_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference = rng.lognormal(5, 0.5, 5000)
    same = stats.psi(reference, rng.lognormal(5, 0.5, 5000))
    longer = stats.psi(reference, rng.lognormal(5.6, 0.5, 5000))
    assert same.statistic < 0.05 and same.p_value > 0.01
    assert longer.statistic > 0.25 and longer.p_value < 1e-6
    assert len(same.reference_shares) == 10
    assert same.reference_shares.sum() == pytest.approx(1.0)


def test_psi_merges_tied_quantiles_and_survives_empty_bins() -> None:
    reference = np.array([10.0] * 90 + [20.0] * 10)
    result = stats.psi(reference, np.array([500.0] * 50))
    assert len(result.edges) < 9  # the ties collapsed the quantile edges
    assert math.isfinite(result.statistic) and result.statistic > 1


def test_psi_of_labels() -> None:
    result = stats.psi_of_labels([0, 0, 1, 1, 2, 2] * 20, [0] * 100 + [1] * 20, k=3)
    assert result.current_shares.tolist() == pytest.approx([100 / 120, 20 / 120, 0.0])
    assert result.statistic > 0.25 and result.p_value < 0.001


@pytest.mark.parametrize(
    ("statistic", "dof", "expected"),
    [(3.841, 1, 0.05), (18.307, 10, 0.05), (23.209, 10, 0.01), (9.342, 10, 0.5)],
)
def test_chi_square_tail_matches_the_tables(statistic: float, dof: int, expected: float) -> None:
    assert stats.chi_square_sf(statistic, dof) == pytest.approx(expected, rel=0.12)


def test_kmeans_finds_separated_blobs() -> None:
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.vstack([c + rng.normal(scale=0.5, size=(50, 2)) for c in centres])
    centroids = stats.kmeans(points, 3, seed=0)
    labels = stats.assign_clusters(points, centroids)
    assert sorted(np.bincount(labels).tolist()) == [50, 50, 50]
    assert all(len(set(labels[i * 50 : (i + 1) * 50].tolist())) == 1 for i in range(3))
    assert len(stats.kmeans(np.ones((5, 2)), 3)) == 1  # one distinct point: one cluster


def test_two_proportion_test() -> None:
    result = stats.two_proportion_test(10, 100, 30, 100)
    assert (result.reference_rate, result.current_rate) == (0.1, 0.3)
    assert result.p_value == pytest.approx(math.erfc(3.5355 / math.sqrt(2)), rel=1e-3)
    assert stats.two_proportion_test(0, 50, 0, 80).p_value == 1.0


def test_subsample_is_bounded_sorted_and_seeded() -> None:
    chosen = stats.subsample(10_000, 100, seed=4)
    assert len(chosen) == 100 and np.all(np.diff(chosen) > 0)
    assert np.array_equal(chosen, stats.subsample(10_000, 100, seed=4))
    assert stats.subsample(5, 100, seed=0).tolist() == [0, 1, 2, 3, 4]


def test_bottom_k_samples_consistently_across_overlapping_windows() -> None:
    keys = [f"req-{n}" for n in range(2000)]
    earlier = {keys[i] for i in stats.bottom_k(keys[:1900], 100, seed=0)}
    later = {keys[100 + i] for i in stats.bottom_k(keys[100:], 100, seed=0)}
    # The windows share 1800 of 1900 keys; so do their samples, nearly.
    assert len(earlier & later) >= 85
    assert len(stats.bottom_k(keys, 100, seed=1)) == 100
    assert set(stats.bottom_k(keys, 100, seed=1)) != set(stats.bottom_k(keys, 100, seed=0))
    assert stats.bottom_k(keys[:5], 100, seed=0).tolist() == [0, 1, 2, 3, 4]
