"""VAE with a fixed decoder likelihood, and its beta-weighted variant (beta-VAE).

Objective per image (nats): -ELBO_beta = -log p(x|z) + beta * KL(q(z|x) || N(0, I)), with one
reparameterized z ~ q(z|x), and ``likelihood``

- ``gaussian`` (default): -log N(x; mu_theta(z), sigma_x^2 I) = ||x - mu_theta(z)||^2 / (2 sigma_x^2)
  + D/2 log(2 pi sigma_x^2). sigma_x^2 = 1 on [0, 1] pixels is the "VAE (sigma_x^2 = 1.0)" baseline
  of AR-ELBO (seed 002, eq. 2 and Table 3): the oversmoothed VAE that 002 sets out to fix.
- ``bernoulli``: the per-image sum of binary cross-entropies between x and mu_theta(z)
  (:func:`explorer.losses.bernoulli_nll`), the MNIST likelihood of Kingma & Welling (2014, App. C)
  and of beta-VAE (Higgins et al. 2017).

Which likelihood beta multiplies against is a convention the beta-VAE paper fixes and 002 does
not: beta = 4 against the sigma_x^2 = 1 Gaussian, whose reconstruction term is ~10 nats per
MNIST image, leaves too few nats to encode anything (measured on the first shipped checkpoint:
KL 0.07 nats, 2 active units, prior samples of 2 classes). The zoo's ``beta-vae`` and ``vae-2d``
(Kingma & Welling's 2-D manifold, their Fig. 4) therefore use ``bernoulli``, which their sources
use; ``vae`` and ``consistency-vae`` keep 002's Gaussian sigma_x^2 = 1. The measurements that chose
this are in docs/model-quality.md.

**Under torchrun (DDP)** nothing changes: the loss is a batch mean of per-image terms, so DDP's
average of the ranks' gradients is the global batch's gradient (explorer.training.DDPLoss).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..losses import bernoulli_nll, gaussian_nll_fixed, kl_std_normal
from .base import LatentModel, ModelConfig

LIKELIHOODS = ("gaussian", "bernoulli")


@dataclass
class VAEConfig(ModelConfig):
    """beta weights the KL term; ``likelihood`` is ``gaussian`` (fixed variance ``sigma2`` =
    sigma_x^2, per pixel) or ``bernoulli`` (``sigma2`` unused); see the module docstring."""

    beta: float = 1.0
    sigma2: float = 1.0
    likelihood: str = "gaussian"

    def __post_init__(self):
        super().__post_init__()
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {self.likelihood!r}; choose one of {list(LIKELIHOODS)}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.sigma2 <= 0:
            raise ValueError(f"sigma2 must be > 0, got {self.sigma2}")

    def default_name(self) -> str:
        base = "beta-vae" if self.beta != 1.0 else "vae"
        return base if self.latent_dim != 2 else f"{base}-2d"


class VAE(LatentModel):
    """VAE with a fixed likelihood (Gaussian sigma_x^2: seed 002 eq. 2; or Bernoulli). See the module docstring."""

    family = "vae"
    config_class = VAEConfig

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image ``rec`` and ``kl`` ``(B,)`` nats, plus ``mu``, ``logvar``, ``x_hat`` for subclasses."""
        mu, logvar = self.posterior(x)
        z = self.reparameterize(mu, logvar)
        if self.config.likelihood == "bernoulli":
            logits = self.decoder(z)
            x_hat, rec = torch.sigmoid(logits), bernoulli_nll(x, logits)
        else:
            x_hat = self.decode(z)
            rec = gaussian_nll_fixed(x, x_hat, self.config.sigma2)
        return {"rec": rec, "kl": kl_std_normal(mu, logvar), "mu": mu, "logvar": logvar, "x_hat": x_hat}

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        t = self.elbo_terms(x)
        rec, kl = t["rec"].mean(), t["kl"].mean()
        return {"loss": rec + self.config.beta * kl, "rec": rec, "kl": kl}

    def sigma2_estimate(self) -> float | None:
        return None
