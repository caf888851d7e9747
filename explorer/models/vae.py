"""Gaussian VAE with fixed decoder variance, and its beta-weighted variant (beta-VAE).

Objective per image (nats): -ELBO_beta = ||x - mu_theta(z)||^2 / (2 sigma_x^2) + D/2 log(2 pi sigma_x^2)
+ beta * KL(q(z|x) || N(0, I)), with one reparameterized z ~ q(z|x).

sigma_x^2 = 1 with the per-image sum-of-squares is the "VAE (sigma_x^2 = 1.0)" baseline of
AR-ELBO (seed 002, eq. 2 and Table 3); beta > 1 is Higgins et al. (2017).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..losses import gaussian_nll_fixed, kl_std_normal
from .base import LatentModel, ModelConfig


@dataclass
class VAEConfig(ModelConfig):
    """beta weights the KL term; sigma2 is the fixed decoder variance sigma_x^2."""

    beta: float = 1.0
    sigma2: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.sigma2 <= 0:
            raise ValueError(f"sigma2 must be > 0, got {self.sigma2}")

    def default_name(self) -> str:
        base = "beta-vae" if self.beta != 1.0 else "vae"
        return base if self.latent_dim != 2 else f"{base}-2d"


class VAE(LatentModel):
    """Gaussian VAE, fixed sigma_x^2 (seed 002 eq. 2). See the module docstring for the loss."""

    family = "vae"
    config_class = VAEConfig

    def elbo_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image ``rec`` and ``kl`` ``(B,)`` nats, plus ``mu``, ``logvar``, ``x_hat`` for subclasses."""
        mu, logvar = self.posterior(x)
        x_hat = self.decode(self.reparameterize(mu, logvar))
        return {"rec": gaussian_nll_fixed(x, x_hat, self.config.sigma2), "kl": kl_std_normal(mu, logvar),
                "mu": mu, "logvar": logvar, "x_hat": x_hat}

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        t = self.elbo_terms(x)
        rec, kl = t["rec"].mean(), t["kl"].mean()
        return {"loss": rec + self.config.beta * kl, "rec": rec, "kl": kl}

    def sigma2_estimate(self) -> float | None:
        return None
