"""explorer.metrics.frechet: the Fréchet distance, against closed forms and scipy."""
import numpy as np
import pytest
from scipy import linalg

from explorer.metrics import feature_statistics, frechet_distance


def random_psd(rng, f, rank=None):
    a = rng.normal(size=(f, rank or f))
    return a @ a.T / (rank or f)


# ---- Fréchet distance: exact answers ------------------------------------------------------------
def test_identical_statistics_give_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=6), random_psd(rng, 6)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_equal_covariances_give_the_squared_mean_difference():
    rng = np.random.default_rng(1)
    mu1, mu2, sigma = rng.normal(size=5), rng.normal(size=5), random_psd(rng, 5)
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(float(((mu1 - mu2) ** 2).sum()), rel=1e-9)


def test_one_dimensional_closed_form():
    # d² = (m1 - m2)² + (s1 - s2)² for N(m1, s1²) and N(m2, s2²)
    d = frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]])
    assert d == pytest.approx(9.0 + 1.0, rel=1e-12)


def test_matches_scipy_sqrtm_on_random_and_singular_covariances():
    rng = np.random.default_rng(2)
    for rank in (8, 3):  # full rank, then singular (fewer samples than features)
        mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
        s1, s2 = random_psd(rng, 8, rank), random_psd(rng, 8, rank)
        covmean = linalg.sqrtm(s1 @ s2).real
        expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6, abs=1e-8)


def test_bad_statistics_are_refused():
    with pytest.raises(ValueError, match="sigma1 must be"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="different feature sizes"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.array([np.nan, 0]), np.eye(2), np.zeros(2), np.eye(2))


def test_feature_statistics_are_mean_and_unbiased_covariance():
    f = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    mu, sigma = feature_statistics(f)
    np.testing.assert_allclose(mu, [2.0, 4.0])
    np.testing.assert_allclose(sigma, np.cov(f.T))
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(f[:1])
