"""Latent-space metrics: coverage of a data distribution by a sampler, MMD, active units.

All functions take ``(N, d)`` arrays (torch tensors or NumPy) and return plain floats.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import pairwise_distances


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected an (N, d) array, got shape {a.shape}")
    return a


def _kth_nn_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row of x to its k-th nearest neighbour in x, itself excluded: ``(N,)``.

    Computed with the same distance function as the real-fake distances of :func:`prdc`, so a
    point that lies exactly on a ball's edge (identical sets) is judged by one rounding, not two."""
    d = pairwise_distances(x, x.copy())  # not ``x, x``: scikit-learn takes another path for one object
    return np.partition(d, k, axis=1)[:, k]


def prdc(real, fake, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` against ``real``.

    Precision/recall: Kynkaanniemi et al. (2019); density/coverage: Naeem et al. (2020), eq. 4-5,
    with k-nearest-neighbour balls (k = 5 as both papers recommend). A sample counts as inside a
    ball when its distance is strictly below the radius, and every distance comes from one function
    (scikit-learn's ``pairwise_distances``), as in Naeem et al.'s reference code (PyPI ``prdc``),
    which this matches exactly, ties included: two identical sets score density 1.0.

    Args:
        real: ``(N, d)`` reference samples (here: encoder means of test images).
        fake: ``(M, d)`` generated samples (here: sampler codes).
        k: neighbourhood size; needs N, M > k.

    Returns:
        ``{"precision", "recall", "density", "coverage"}``; density can exceed 1.

    Raises:
        ValueError: shapes differ in d, or too few samples for k.
    """
    real, fake = _np(real), _np(fake)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake must share d, got {real.shape[1]} and {fake.shape[1]}")
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"need more than k={k} samples in each set, got {len(real)} and {len(fake)}")
    r_real = _kth_nn_radius(real, k)
    r_fake = _kth_nn_radius(fake, k)
    cross = pairwise_distances(real, fake)  # (N, M)
    in_real_ball = cross < r_real[:, None]  # fake j inside real i's ball
    return {
        "precision": float(in_real_ball.any(axis=0).mean()),
        "recall": float((cross < r_fake[None, :]).any(axis=1).mean()),
        "density": float(in_real_ball.sum(axis=0).mean() / k),
        "coverage": float((cross.min(axis=1) < r_real).mean()),
    }


def covered(real, fake, k: int = 5) -> np.ndarray:
    """Which ``real`` points a sampler covers: ``(N,)`` bool, True where some ``fake`` sample lies
    strictly inside the point's k-NN ball (Naeem et al. 2020, eq. 5, before the mean). Its mean is
    :func:`prdc`'s coverage, computed the same way.

    Args:
        real: ``(N, d)`` reference points (encoder means, or one posterior draw per test image).
        fake: ``(M, d)`` sampler codes.
        k: neighbourhood size; needs N > k and M >= 1.

    Raises:
        ValueError: shapes differ in d, or too few real points for k.
    """
    real, fake = _np(real), _np(fake)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and fake must share d, got {real.shape[1]} and {fake.shape[1]}")
    if len(real) <= k or len(fake) < 1:
        raise ValueError(f"need more than k={k} real points and one fake, got {len(real)} and {len(fake)}")
    return pairwise_distances(real, fake).min(axis=1) < _kth_nn_radius(real, k)


def median_bandwidth(x: torch.Tensor, y: torch.Tensor) -> float:
    """Median heuristic: the median pairwise Euclidean distance over the pooled samples."""
    z = torch.cat([x, y])
    d = torch.pdist(z)
    return float(d.median())


def mmd_rbf(x, y, bandwidth: float | None = None) -> float:
    """Unbiased squared MMD with the RBF kernel k(a, b) = exp(-||a - b||^2 / (2 h^2)).

    Gretton et al. (2012), eq. 3 (U-statistic). ``h`` defaults to the median heuristic on the
    pooled sample. Returns 0 in expectation when x and y share a distribution (can be
    slightly negative).
    """
    x = torch.as_tensor(_np(x))
    y = torch.as_tensor(_np(y))
    h = bandwidth if bandwidth is not None else median_bandwidth(x, y)
    if h <= 0:
        raise ValueError(f"bandwidth must be positive, got {h}")

    def k(a, b):
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * h * h))

    n, m = len(x), len(y)
    kxx = (k(x, x).sum() - n) / (n * (n - 1))
    kyy = (k(y, y).sum() - m) / (m * (m - 1))
    return float(kxx + kyy - 2 * k(x, y).mean())


def active_units(mu, threshold: float = 0.01) -> int:
    """Burda et al. (2016): number of latent dims with Cov_x(E_q[z_i|x]) > threshold.

    Args:
        mu: ``(N, d)`` posterior means over a dataset.
    """
    return int((_np(mu).var(axis=0) > threshold).sum())
