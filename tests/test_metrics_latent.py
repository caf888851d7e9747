"""explorer.metrics.latent: precision/recall/density/coverage, MMD, active units."""
import numpy as np
import pytest
import torch

from explorer.metrics import active_units, mmd_rbf, prdc


def test_prdc_identical_sets_are_perfect():
    x = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    r = prdc(x, x.clone(), k=5)
    assert r["precision"] == r["recall"] == r["coverage"] == 1.0
    assert r["density"] == pytest.approx(1.0, abs=0.05)


def test_prdc_disjoint_sets_score_zero_and_partial_support_lowers_coverage():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 3, generator=g)
    assert prdc(real, real + 100.0)["coverage"] == 0.0
    assert prdc(real, real + 100.0)["precision"] == 0.0
    half = real[real[:, 0] > 0]  # fake covers only half the real support
    r = prdc(real, half + 0.01)
    assert 0.3 < r["coverage"] < 0.7 and r["precision"] > 0.9


def test_mmd_is_near_zero_for_same_distribution_and_grows_with_shift():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(500, 5, generator=g), torch.randn(500, 5, generator=g)
    same = mmd_rbf(a, b)
    shifted = mmd_rbf(a, b + 1.0)
    assert abs(same) < 0.01 and shifted > 20 * max(abs(same), 1e-4)


def test_active_units_counts_dims_with_variance_above_threshold():
    mu = np.zeros((1000, 4))
    mu[:, 0] = np.random.default_rng(0).normal(0, 1, 1000)
    mu[:, 1] = np.random.default_rng(1).normal(0, 0.05, 1000)  # var 0.0025 < 0.01
    assert active_units(mu) == 1
