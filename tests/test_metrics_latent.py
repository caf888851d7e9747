"""explorer.metrics.latent: precision/recall/density/coverage, MMD, active units."""
import contextlib
import io

import numpy as np
import prdc as reference_prdc  # Naeem et al.'s reference implementation
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.metrics import active_units, covered, mmd_rbf, prdc


def test_prdc_identical_sets_are_perfect():
    """Every fake point sits exactly on the edge of some real ball: the strict < counts the point
    itself and its k - 1 nearer neighbours, so density is exactly 1 (it was 1.064 when the radii and
    the cross distances came from two different distance functions)."""
    x = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    r = prdc(x, x.clone(), k=5)
    assert r["precision"] == r["recall"] == r["coverage"] == 1.0
    assert r["density"] == 1.0


@settings(max_examples=25, deadline=None)
@given(n=st.integers(8, 40), m=st.integers(8, 40), d=st.integers(1, 6), k=st.integers(1, 6),  # the reference needs k + 2
       seed=st.integers(0, 2**31 - 1), overlap=st.booleans())
def test_prdc_matches_naeem_et_al_reference(n, m, d, k, seed, overlap):
    """Naeem et al.'s own implementation (PyPI ``prdc``) gives the same four numbers, on independent
    sets and on identical ones (where every point lies on a ball's edge). Sets sharing only some
    points are left out: there a tie is decided by the last bit of a BLAS product whose blocking
    depends on the matrix shapes, in the reference as in ours."""
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, d))
    fake = real.copy() if overlap else rng.normal(size=(m, d)) * 1.3 + 0.2
    ours = prdc(real, fake, k=k)
    with contextlib.redirect_stdout(io.StringIO()):  # the reference prints its sample counts
        theirs = reference_prdc.compute_prdc(real, fake, nearest_k=k)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(theirs[key]), abs=1e-12), key


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


def test_covered_marks_the_points_whose_ball_holds_a_sample_and_averages_to_coverage():
    g = torch.Generator().manual_seed(4)
    real = torch.randn(300, 3, generator=g)
    fake = real[real[:, 0] > 0.5] + 0.01  # samples only where x > 0.5
    mask = covered(real, fake)
    assert mask.shape == (300,) and mask.dtype == bool
    assert mask.mean() == prdc(real, fake)["coverage"]
    assert mask[(real[:, 0] > 0.6).numpy()].all() and not mask[(real[:, 0] < -0.5).numpy()].any()
    with pytest.raises(ValueError, match="share d"):
        covered(real, fake[:, :2])
