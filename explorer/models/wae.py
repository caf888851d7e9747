"""Wasserstein autoencoder with the MMD penalty, WAE-MMD (Tolstikhin, Bousquet, Gelly and
Schölkopf, ICLR 2018, "Wasserstein Auto-Encoders", arXiv:1711.01558, eq. 4 and Algorithm 2).

Objective (eq. 4 with D_Z = MMD_k, minibatch form of Algorithm 2):

    D_WAE = E_x c(x, D(E(x))) + λ · MMD_k(Q_Z, P_Z),   c(x, y) = ||x - y||²,   P_Z = N(0, I_d),

with a deterministic encoder (§2.2, "deterministic encoders"; the MNIST experiments of §4 use
one), the cost the per-image sum of squared errors on [0, 1] pixels, its batch mean, and the MMD²
estimated per batch by :func:`mmd_imq` between the B codes z_i = E(x_i) and B fresh prior draws
z̃_i ~ N(0, I) (Algorithm 2). Loss terms: ``rec`` and ``mmd`` (unweighted).

Kernel (§4, "we used the inverse multiquadratics kernel"; the authors' code ``wae.py``,
``mmd_penalty``): k(x, y) = Σ_s C_s / (C_s + ||x - y||²), C_s = 2 d σ_z² · s for
s in (0.1, 0.2, 0.5, 1, 2, 5, 10), σ_z² = 1 the prior variance (:func:`imq_kernel`).

λ = 10, the paper's MNIST value (§4, "λ = 10 ... for MNIST"). Note: the authors' code scales
the l2sq cost by 0.05 (``0.05 * reduce_mean(sum of squares)``), i.e. λ = 200 relative to the
per-image SSE; we follow the paper's text, c = ||x - y||² and λ = 10 (``lam`` changes it).
d = 16 here (the paper's MNIST uses d = 8) and the nets are :mod:`explorer.models.ae`'s.

**Under torchrun (DDP)** the MMD penalty is estimated on each rank's local batch (as a U-statistic
it is unbiased at any batch size), and DDP averages its gradients over ranks; it is not the
global batch's MMD.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .ae import AEConfig, DeterministicAE

IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # the authors' code, wae.py mmd_penalty
WAE_LAMBDA = 10.0  # Tolstikhin et al. 2018, §4, MNIST


def imq_kernel(a: torch.Tensor, b: torch.Tensor, scales=IMQ_SCALES, sigma2_prior: float = 1.0) -> torch.Tensor:
    """Multi-scale inverse multiquadratic kernel matrix (Tolstikhin et al. 2018, §4 and the
    authors' ``mmd_penalty``): k(x, y) = Σ_s C_s / (C_s + ||x - y||²), C_s = 2 d σ² s.

    Args:
        a: ``(n, d)``; b: ``(m, d)`` points in latent space.
        scales: the multipliers s of the base scale C = 2 d σ² (default 0.1 ... 10, seven scales).
        sigma2_prior: σ², the per-dimension variance of the prior P_Z = N(0, σ² I).

    Returns:
        ``(n, m)`` kernel values, each in (0, len(scales)] (dimensionless).

    Raises:
        ValueError: ``a`` and ``b`` are not 2-D with the same d, or no scale is given.
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected a (n, d) and b (m, d), got {tuple(a.shape)} and {tuple(b.shape)}")
    if len(scales) == 0:
        raise ValueError("imq_kernel needs at least one scale")
    d = a.shape[1]
    dist2 = (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)  # (n, m), exact (no clamping needed)
    c = 2.0 * d * sigma2_prior * torch.as_tensor(scales, dtype=a.dtype, device=a.device)[:, None, None]
    return (c / (c + dist2[None])).sum(0)


def mmd_imq(qz: torch.Tensor, pz: torch.Tensor, scales=IMQ_SCALES, sigma2_prior: float = 1.0) -> torch.Tensor:
    """Unbiased U-statistic estimate of MMD²_k(Q_Z, P_Z) with :func:`imq_kernel` (Tolstikhin et
    al. 2018, Algorithm 2; the MMD²_u of Gretton et al. 2012, JMLR, Lemma 6):

        1/(n(n-1)) Σ_{i≠j} k(q_i, q_j) + 1/(m(m-1)) Σ_{i≠j} k(p_i, p_j) - 2/(n m) Σ_{i,j} k(q_i, p_j).

    Args:
        qz: encoder codes ``(n, d)``; pz: prior draws ``(m, d)``; n, m >= 2.
        scales, sigma2_prior: as :func:`imq_kernel`.

    Returns:
        a scalar (dimensionless; may be slightly negative, being unbiased).

    Raises:
        ValueError: shapes disagree or fewer than 2 points on a side.
    """
    if qz.dim() != 2 or pz.dim() != 2 or qz.shape[1] != pz.shape[1] or min(len(qz), len(pz)) < 2:
        raise ValueError(f"mmd_imq needs qz (n >= 2, d) and pz (m >= 2, d), got {tuple(qz.shape)} and {tuple(pz.shape)}")
    n, m = len(qz), len(pz)
    k_qq = imq_kernel(qz, qz, scales, sigma2_prior)
    k_pp = imq_kernel(pz, pz, scales, sigma2_prior)
    k_qp = imq_kernel(qz, pz, scales, sigma2_prior)
    within_q = (k_qq.sum() - k_qq.diagonal().sum()) / (n * (n - 1))
    within_p = (k_pp.sum() - k_pp.diagonal().sum()) / (m * (m - 1))
    return within_q + within_p - 2.0 * k_qp.mean()


@dataclass
class WAEConfig(AEConfig):
    """WAE-MMD settings.

    Attributes:
        lam: λ, the weight of MMD²; >= 0. Default 10 (Tolstikhin et al. 2018, §4, MNIST).

    Raises:
        ValueError: negative ``lam``.
    """

    lam: float = WAE_LAMBDA

    def __post_init__(self):
        super().__post_init__()
        if not self.lam >= 0:
            raise ValueError(f"lam must be >= 0, got {self.lam!r}")

    def default_name(self) -> str:
        return "wae-mmd" + ("-2d" if self.latent_dim == 2 else "")


class WAE(DeterministicAE):
    """WAE-MMD (Tolstikhin et al. 2018, Algorithm 2) with the IMQ kernel and P_Z = N(0, I).

    ``loss(x)`` returns ``loss`` = ``rec`` + λ ``mmd``, ``rec`` the batch-mean per-image SSE and
    ``mmd`` the U-statistic MMD² between the batch's codes and as many prior draws.
    """

    family = "wae-mmd"
    prior_in_objective = True  # the MMD term matches the codes to N(0, I) (Tolstikhin et al. 2018)
    config_class = WAEConfig

    def regularizers(self, x: torch.Tensor, z: torch.Tensor, x_hat: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        return {"mmd": (self.config.lam, mmd_imq(z, torch.randn_like(z)))}
