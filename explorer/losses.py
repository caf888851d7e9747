"""Loss terms for the Gaussian VAE family. All values are in nats.

Conventions: images are ``(B, C, H, W)``; D = C*H*W pixels; latents are ``(B, d)``. A
"per-image" quantity is summed over pixels (or latent dimensions) and returned as ``(B,)``.
"""
from __future__ import annotations

import math

import torch

from .distributed import gather, global_sum, world_size

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


def bernoulli_nll(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """-log Bernoulli(x; sigmoid(logits)) per image, ``(B,)`` nats: the per-image sum of binary
    cross-entropies, with grey levels x in [0, 1] as soft targets.

    The MNIST likelihood of Kingma & Welling (2014, App. C: "Bernoulli MLP as decoder"), kept by
    β-VAE (Higgins et al. 2017) and disentanglement_lib; computed from logits for stability.
    With grey targets its minimum is the images' binary entropy, not 0.
    """
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def dequantize(x: torch.Tensor) -> torch.Tensor:
    """Uniform dequantization of 8-bit images: ``(B, C, H, W)`` levels k/255 -> (k + u)/256, u ~ U(0, 1).

    A continuous density fitted to discrete data can put unbounded density on the discrete
    values (Theis, van den Oord & Bethge 2016, §3.1); with the per-pixel MLE variances of AR-ELBO
    that happens at pixels that are black in every image (σᵢ² -> ε). Adding one quantization
    step of uniform noise bounds the likelihood. Values stay in [0, 1].
    """
    return (x * 255.0 + torch.rand_like(x)) / 256.0


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
    if variance in _GLOBAL and world_size() > 1:
        return _GLOBAL[variance](err, eps)
    return _SIGMA2[variance](err, eps)


_SIGMA2 = {
    "iso-i": lambda err, eps: err.mean(),
    "iso-d": lambda err, eps: err.flatten(1).mean(1) + eps,
    "diag-i": lambda err, eps: err.mean(0) + eps,
    "diag-d": lambda err, eps: err + eps,
}


def _global_count(n: int, like: torch.Tensor) -> torch.Tensor:
    return global_sum(torch.tensor(float(n), dtype=like.dtype, device=like.device))


# Under torchrun the batch statistics are the global batch's: the sums are all-reduced (with a
# gradient that flows back to every rank's share) and divided by the global count, so Iso-I's and
# Diag-I's σ² are the same with 1 or N ranks. Iso-D and Diag-D are per image: nothing to gather.
_GLOBAL = {
    "iso-i": lambda err, eps: global_sum(err.sum()) / _global_count(err.numel(), err),
    "diag-i": lambda err, eps: global_sum(err.sum(0)) / _global_count(err.shape[0], err) + eps,
}


def conditional_sigma2(x: torch.Tensor, x_hat: torch.Tensor, z: torch.Tensor, mu: torch.Tensor,
                       logvar: torch.Tensor, eps: float = AR_ELBO_EPS, leave_one_out: bool = False) -> torch.Tensor:
    """Diag-D's per-pixel variance σᵢ²(z) as the MLE *given z* (the reading of seed 002 eq. 51 in
    :mod:`explorer.models.ar_elbo`): E[(xᵢ - μᵢ(z))² | z] over the minibatch,

        σ̂ᵢ²(z_b) = Σ_b' w_bb' (x_b',i - μᵢ(z_b))² + eps,   w_bb' = softmax_b' log q(z_b | x_b'),

    i.e. the squared errors of every image of the batch that could have produced z_b, weighted by
    how well its posterior explains z_b (the posterior p(x|z) ∝ p_data(x) q(z|x) on the batch).
    With sharp posteriors w_bb' -> 1 for b' = b and this is eq. 51, (x_b - μ(z_b))²; with
    uninformative ones it is the batch's per-pixel variance, Diag-I's eq. 47.

    ``leave_one_out=True`` (Diag-D reading 2, the default for new checkpoints) drops b' = b from the
    sum (w_bb = 0, the rest renormalised): the variance that weighs image b's error is estimated from
    the *other* images that could have produced z_b, so it is not the error it weighs. With the image
    itself in the estimate, once posteriors sharpen σ̂ᵢ² -> (xᵢ - μᵢ)² and the step's per-pixel weight
    1/σ̂ᵢ² rewards fitting exactly the pixels already nearly right (the eq. 51 degeneracy, mode-seeking,
    jagged strokes). With sharp posteriors the leave-one-out estimate is the squared error of the
    nearest other code's image, a local variance of the data given z.

    Args:
        x, x_hat: ``(B, C, H, W)`` data and decoder means μ(z_b); z, mu, logvar: ``(B, d)`` the
            codes and the posterior parameters they were drawn from. ``leave_one_out`` needs B >= 2.
    Under torchrun the images b' run over the global batch: every rank's ``x``, ``mu`` and
    ``logvar`` are gathered (:func:`explorer.distributed.gather`), so σ̂ᵢ²(z_b) is the same as in
    one process at the global batch size.

    Returns:
        ``(B, C, H, W)`` variances, detached (held fixed in the step, as eq. 8a's alternation).
    """
    with torch.no_grad():
        (x_all, offset), (mu_all, _), (logvar_all, _) = gather(x), gather(mu), gather(logvar)
        lq = -0.5 * (((z[:, None] - mu_all[None]) ** 2) * (-logvar_all).exp()[None] + logvar_all[None]).sum(-1)  # (B, B')
        if leave_one_out:
            if lq.shape[1] < 2:
                raise ValueError(f"leave-one-out variance needs a batch of at least 2 images, got {lq.shape[1]}")
            own = torch.arange(lq.shape[0], device=lq.device)
            lq[own, own + offset] = float("-inf")
        w = torch.softmax(lq, dim=1)
        xf, m = x_all.flatten(1), x_hat.flatten(1)
        s2 = w @ xf.pow(2) - 2.0 * m * (w @ xf) + m.pow(2)  # Σ_b' w (x_b' - m_b)², using Σ_b' w = 1
        return (s2.clamp_min(0.0) + eps).view_as(x)


def ar_elbo_reconstruction(x: torch.Tensor, x_hat: torch.Tensor, variance: str,
                           eps: float = AR_ELBO_EPS, posterior: tuple | None = None,
                           leave_one_out: bool = False, pooled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
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

    Diag-D with ``posterior = (z, mu, logvar)`` uses :func:`conditional_sigma2` instead of eq. 51's
    single-sample MLE, and returns the Gaussian NLL at that (fixed) variance:
    Σᵢ [(xᵢ - μᵢ)² / (2σ̂ᵢ²) + ½ log 2πσ̂ᵢ²]; with sharp posteriors it equals the eq. 53 form.
    ``leave_one_out`` is passed on (Diag-D reading 2); the NLL is then that of image b under a
    variance estimated without it, a held-out figure that is much larger than the in-sample one.

    Diag-D with ``pooled=True`` (reading 3, :mod:`explorer.models.ar_elbo`) needs no posterior: the
    variance is σ̂ᵢ²(z_b) = ½ (σ̄ᵢ² + (x_b,i - μᵢ(z_b))²) + eps, the mean of eq. 51's one-image MLE
    and eq. 47's batch MLE σ̄ᵢ² (equivalently, the posterior mean of σᵢ²(z_b) given that one error
    under an inverse-gamma prior of shape 3/2 and mean σ̄ᵢ²), held fixed in the step. Its per-pixel
    gradient (μᵢ - xᵢ) / σ̂ᵢ² is twice that of Table 2's Diag-D objective ½ ln((xᵢ - μᵢ)² + εᵢ) with
    the stabilising constant εᵢ = σ̄ᵢ² in place of 1e-6.

    Returns:
        ``(rec, sigma2)``: ``rec`` is a scalar, the batch-mean per-image nats; ``sigma2`` is
        the detached MLE from :func:`sigma2_mle`.
    """
    d = x[0].numel()
    if variance == "diag-d" and pooled:
        with torch.no_grad():
            s2 = 0.5 * (sigma2_mle(x, x_hat, "diag-i", eps=0.0) + (x - x_hat).pow(2)) + eps
        rec = (0.5 * (x - x_hat).pow(2) / s2 + 0.5 * (LOG_2PI + s2.log())).flatten(1).sum(1).mean()
        return rec, s2
    if variance == "diag-d" and posterior is not None:
        s2 = conditional_sigma2(x, x_hat, *posterior, eps=eps, leave_one_out=leave_one_out)
        rec = (0.5 * (x - x_hat).pow(2) / s2 + 0.5 * (LOG_2PI + s2.log())).flatten(1).sum(1).mean()
        return rec, s2
    s2 = sigma2_mle(x, x_hat, variance, eps)
    const = 0.5 * d * (1.0 + LOG_2PI)
    if variance.startswith("iso"):
        rec = const + 0.5 * d * s2.log().mean()
    else:
        rec = const + 0.5 * s2.log().reshape(-1, d).mean(0).sum()
    return rec, s2.detach()
