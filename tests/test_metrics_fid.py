"""Frechet distance and feature statistics (progan_tf/metrics/fid.py), without Inception."""

import numpy as np
import pytest

from progan_tf.metrics import fid


def random_covariance(dim, seed):
    a = np.random.default_rng(seed).normal(size=(dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


def test_frechet_distance_of_a_set_against_itself_is_zero():
    features = np.random.default_rng(0).normal(size=(500, 16))
    mean, covariance = fid.feature_statistics(features)
    assert fid.frechet_distance(mean, covariance, mean, covariance) == pytest.approx(0, abs=1e-9)


def test_one_dimensional_gaussians_give_the_squared_w2_distance():
    # (m1 - m2)^2 + (s1 - s2)^2 for N(m1, s1^2) and N(m2, s2^2).
    value = fid.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]])
    assert value == pytest.approx((1 - 3) ** 2 + (2 - 3) ** 2)


def test_diagonal_gaussians_follow_the_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    var1, var2 = rng.uniform(0.5, 3, 8), rng.uniform(0.5, 3, 8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    value = fid.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert value == pytest.approx(expected, rel=1e-10)


def test_general_gaussians_match_the_symmetric_form_of_the_trace():
    # Tr((S1 S2)^1/2) = Tr((S1^1/2 S2 S1^1/2)^1/2), computed here with eigendecompositions only.
    s1, s2 = random_covariance(6, 2), random_covariance(6, 3)
    mu1, mu2 = np.zeros(6), np.full(6, 0.5)

    def sqrt_psd(matrix):
        values, vectors = np.linalg.eigh(matrix)
        return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T

    root1 = sqrt_psd(s1)
    expected = 6 * 0.25 + np.trace(s1) + np.trace(s2) - 2 * np.trace(sqrt_psd(root1 @ s2 @ root1))
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert fid.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-9)


def test_samples_of_two_gaussians_approach_the_closed_form():
    rng = np.random.default_rng(4)
    s1, s2 = random_covariance(4, 5), random_covariance(4, 6)
    mu1, mu2 = np.zeros(4), np.array([1.0, -1.0, 0.5, 0.0])
    exact = fid.frechet_distance(mu1, s1, mu2, s2)
    a = rng.multivariate_normal(mu1, s1, size=40000)
    b = rng.multivariate_normal(mu2, s2, size=40000)
    sampled = fid.frechet_distance(*fid.feature_statistics(a), *fid.feature_statistics(b))
    assert sampled == pytest.approx(exact, rel=0.03)


def test_streamed_statistics_equal_numpy_mean_and_cov():
    features = np.random.default_rng(7).normal(3.0, 2.0, size=(103, 5)).astype(np.float32)
    stats = fid.FeatureStatistics()
    for start in range(0, 103, 10):
        stats.feed(features[start:start + 10])
    mean, covariance = stats.statistics()
    np.testing.assert_allclose(mean, features.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(covariance, np.cov(features.astype(np.float64), rowvar=False),
                               rtol=1e-9, atol=1e-12)


def test_statistics_round_trip_through_the_cache_file(tmp_path):
    mean, covariance = np.arange(3.0), random_covariance(3, 8)
    path = str(tmp_path / "stats" / "x.npz")
    assert fid.load_statistics(path) is None
    fid.save_statistics(path, mean, covariance)
    loaded = fid.load_statistics(path)
    np.testing.assert_array_equal(loaded[0], mean)
    np.testing.assert_array_equal(loaded[1], covariance)


def test_inconsistent_shapes_and_too_few_samples_are_rejected():
    with pytest.raises(ValueError, match="shapes"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="N >= 2"):
        fid.feature_statistics(np.zeros((1, 4)))
