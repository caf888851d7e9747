"""Loss terms for the Gaussian VAE family. All values are in nats.

Conventions: images are ``(B, C, H, W)``; D = C*H*W pixels; latents are ``(B, d)``. A
"per-image" quantity is summed over pixels (or latent dimensions) and returned as ``(B,)``.
"""
from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)
AR_ELBO_EPS = 1e-6
VARIANCES = ("iso-i", "iso-d", "diag-i", "diag-d")


def squared_error(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Per-image sum of squared errors ``||x - x_hat||^2``: ``(B, C, H, W)`` x2 -> ``(B,)``."""
    return (x - x_hat).pow(2).flatten(1).sum(1)


def kl_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per sample: ``(B, d)`` x2 -> ``(B,)`` nats.

    Closed form 0.5 * sum(mu^2 + var - 1 - logvar) (Kingma & Welling 2014, App. B).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)


def kl_gaussians(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, diag var_q) || N(mu_p, diag var_p)) per sample: four ``(B, d)`` -> ``(B,)`` nats.

    Used for the consistency loss KL(q(z'|x') || q(z|x)) of seed 003 eq. 2 and the
    ``drift_kl`` metric (003 Fig. 3).
    """
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1.0).sum(1)


def gaussian_nll(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-log N(z; mu, diag exp(logvar)) per sample: three ``(B, d)`` -> ``(B,)`` nats.

    0.5 * sum((z - mu)^2 / var + logvar + log 2 pi). With (mu, logvar) = the frozen encoder's
    q(z|G(z)) this is LSR-GAN's latent term -log q(z|G(z)) (seed 004 eq. 4).
    """
    return 0.5 * ((z - mu).pow(2) * (-logvar).exp() + logvar + LOG_2PI).sum(1)


def gaussian_nll_fixed(x: torch.Tensor, x_hat: torch.Tensor, sigma2: float) -> torch.Tensor:
    """-log N(x; x_hat, sigma2 I) per image, ``(B,)`` nats: ||x - x_hat||^2/(2 sigma2) + D/2 log(2 pi sigma2).

    The fixed-variance Gaussian VAE reconstruction term (seed 002 eq. 2; sigma2 = 1 is the
    "VAE (sigma_x^2 = 1.0)" baseline row of Table 3).
    """
    d = x[0].numel()
    return squared_error(x, x_hat) / (2 * sigma2) + 0.5 * d * (LOG_2PI + math.log(sigma2))


def sigma2_mle(x: torch.Tensor, x_hat: torch.Tensor, variance: str, eps: float = AR_ELBO_EPS) -> torch.Tensor:
    """Maximum-likelihood estimate of the decoder variance Sigma_x (seed 002 App. G).

    Args:
        x, x_hat: ``(B, C, H, W)`` data and decoder means.
        variance: ``iso-i`` (eq. 40: scalar batch MSE per dimension, shape ``()``),
            ``iso-d`` (eq. 43: per-sample ||x - x_hat||^2 / D, shape ``(B,)``),
            ``diag-i`` (eq. 47: per-pixel batch mean, shape ``(C, H, W)``),
            ``diag-d`` (eq. 51: per-sample per-pixel squared error, shape ``(B, C, H, W)``).
        eps: added to the estimate for every case but Iso-I, as 002 §4.2 suggests (1e-6).

    Raises:
        ValueError: unknown ``variance``.
    """
    err = (x - x_hat).pow(2)
    if variance not in _SIGMA2:
        raise ValueError(f"unknown variance parameterization {variance!r}; choose one of {list(VARIANCES)}")
    return _SIGMA2[variance](err, eps)


_SIGMA2 = {
    "iso-i": lambda err, eps: err.mean(),
    "iso-d": lambda err, eps: err.flatten(1).mean(1) + eps,
    "diag-i": lambda err, eps: err.mean(0) + eps,
    "diag-d": lambda err, eps: err + eps,
}


def ar_elbo_reconstruction(x: torch.Tensor, x_hat: torch.Tensor, variance: str,
                           eps: float = AR_ELBO_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """AR-ELBO reconstruction objective J_rec at the MLE of Sigma_x (seed 002 Table 2, eq. 9, 41, 45, 49, 53).

    The value returned is the Gaussian negative log-likelihood per image evaluated at the MLE
    variance, i.e. including the constants Table 2 omits, so it is in nats and comparable
    with the fixed-variance VAE:

    - Iso-I: D/2 (1 + log 2 pi) + D/2 log sigma2_hat, sigma2_hat = batch MSE per dimension;
    - Iso-D: D/2 (1 + log 2 pi) + D/2 E_b[log sigma2_hat(z_b)];
    - Diag-I: D/2 (1 + log 2 pi) + 1/2 sum_i log sigma2_hat_i;
    - Diag-D: D/2 (1 + log 2 pi) + 1/2 sum_i E_b[log sigma2_hat_i(z_b)].

    The gradients equal those of Table 2's objectives because the added terms are constant.
    The minibatch stands in for E_pdata(x) E_q(z|x), as in the paper's training.

    Returns:
        ``(rec, sigma2)``: ``rec`` is a scalar, the batch-mean per-image nats; ``sigma2`` is
        the detached MLE from :func:`sigma2_mle`.
    """
    s2 = sigma2_mle(x, x_hat, variance, eps)
    d = x[0].numel()
    const = 0.5 * d * (1.0 + LOG_2PI)
    if variance.startswith("iso"):
        rec = const + 0.5 * d * s2.log().mean()
    else:
        rec = const + 0.5 * s2.log().reshape(-1, d).mean(0).sum()
    return rec, s2.detach()
