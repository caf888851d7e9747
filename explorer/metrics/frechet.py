"""Fréchet distance between two Gaussians fitted to feature sets (the FID of Heusel et al. 2017).

    d² = ||μ1 − μ2||² + tr Σ1 + tr Σ2 − 2 tr (Σ1 Σ2)^{1/2}        (Heusel et al. 2017, eq. 6;
                                                                   Dowson & Landau 1982)

Pure NumPy functions, float64 throughout. The matrix square root is taken through eigenvalues:
Σ1 Σ2 is similar to the symmetric PSD matrix S = Σ1^{1/2} Σ2 Σ1^{1/2}, so
tr (Σ1 Σ2)^{1/2} = Σ_i sqrt(λ_i(S)). Both eigendecompositions are of symmetric matrices
(``numpy.linalg.eigh``), tiny negative eigenvalues from round-off are clipped to 0, and no complex
parts appear, so pytorch-fid's safeguards (an ε·I offset when ``sqrtm`` is singular, dropping a
small imaginary part) are not needed. The tests check the result against ``scipy.linalg.sqrtm``.
"""
from __future__ import annotations

import numpy as np


def _as_stats(mu, sigma, which: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1:
        raise ValueError(f"mu{which} must be a vector (F,), got shape {mu.shape}")
    if sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"sigma{which} must be ({mu.shape[0]}, {mu.shape[0]}) to match mu{which}, got {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ValueError(f"mu{which}/sigma{which} contain NaN or inf")
    return mu, sigma


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (eigenvalues clipped at 0)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Args:
        mu1, mu2: means ``(F,)``.
        sigma1, sigma2: covariances ``(F, F)``, symmetric positive semi-definite (a singular one,
            from fewer samples than features, is fine).

    Returns:
        d² ≥ 0 as a float, in squared feature units (FID when the features are TF-Inception
        pool3 activations). 0 for identical statistics; ||mu1 − mu2||² for equal covariances.

    Raises:
        ValueError: shapes that are not ``(F,)`` and ``(F, F)`` or that differ between the two,
            or non-finite values.
    """
    mu1, sigma1 = _as_stats(mu1, sigma1, "1")
    mu2, sigma2 = _as_stats(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise ValueError(f"the two sets have different feature sizes: {mu1.shape[0]} and {mu2.shape[0]}")
    root1 = _psd_sqrt(sigma1)
    inner = root1 @ sigma2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean, 0.0))


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(F,)`` and unbiased covariance ``(F, F)`` (float64) of features ``(N, F)``.

    Raises:
        ValueError: not 2-D, fewer than 2 rows, or non-finite values.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be (N >= 2, F), got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("features contain NaN or inf")
    return f.mean(axis=0), np.cov(f, rowvar=False)
