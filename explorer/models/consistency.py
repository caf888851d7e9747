"""VAE with the encoder-decoder consistency loss (seed 003, eq. 2).

Objective per image (nats), minimised: -ELBO + alpha * KL(q(z'|x') || q(z|x)), where
z ~ q(z|x) (reparameterized), x' = mu_theta(z) is the decoded reconstruction, and q(z'|x')
is the encoder applied to x'. Everything else is identical to :class:`explorer.models.vae.VAE`.

Reading: eq. 2 does not say whether gradients flow through x' and through q(z|x) inside
the KL; we let them flow through both (the paper introduces "no additional parameters" and
describes the term as part of the objective, with no stop-gradient), so the decoder is also
pushed to produce reconstructions that re-encode consistently.

**Under torchrun (DDP)** nothing changes: the consistency term is per image, a batch mean like the
ELBO's terms, so DDP's averaged gradients are the global batch's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..losses import kl_gaussians
from .vae import VAE, VAEConfig


@dataclass
class ConsistencyVAEConfig(VAEConfig):
    """alpha >= 0 weights the consistency KL (003 eq. 2)."""

    alpha: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")

    def default_name(self) -> str:
        return "consistency-vae" + ("-2d" if self.latent_dim == 2 else "")


class ConsistencyVAE(VAE):
    """VAE + alpha * KL(q(z'|x') || q(z|x)) (seed 003 eq. 2)."""

    family = "consistency-vae"
    config_class = ConsistencyVAEConfig

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        t = self.elbo_terms(x)
        mu2, logvar2 = self.posterior(t["x_hat"])
        drift = kl_gaussians(mu2, logvar2, t["mu"], t["logvar"]).mean()
        rec, kl = t["rec"].mean(), t["kl"].mean()
        return {"loss": rec + self.config.beta * kl + self.config.alpha * drift, "rec": rec, "kl": kl,
                "drift_kl": drift}
