"""AR-ELBO: the Gaussian VAE with sigma_x^2 (or Sigma_x) kept at its maximum-likelihood value.

Seed 002 (AR-ELBO, "Preventing posterior collapse induced by oversmoothing in Gaussian VAE"):
eq. 9 for Iso-I, Table 2 and App. G (eq. 40-53) for the four parameterizations

- ``iso-i``: Sigma_x = sigma^2 I, sigma^2 shared by all data;
- ``iso-d``: Sigma_x = sigma^2(z) I, one sigma^2 per sample;
- ``diag-i``: Sigma_x = diag(sigma_i^2), one variance per pixel shared by all data;
- ``diag-d``: Sigma_x = diag(sigma_i^2(z)), one variance per pixel per sample.

Objective per image: J_rec (Table 2, evaluated at the minibatch MLE, see
:func:`explorer.losses.ar_elbo_reconstruction`) + KL(q(z|x) || N(0, I)) (eq. 10a). There is
no hyperparameter. eps = 1e-6 is added inside the logarithm for all but Iso-I (§4.2).

Reading of "E_pdata(x)" in eq. 9: the minibatch average, as in the paper's training; so the
Iso-I loss is D/2 log(batch MSE) + batch-mean KL, which is what makes sigma_x^2 the MLE of
every step (eq. 8a).

``model.sigma2`` holds the MLE from the latest training batch (a scalar for Iso-*, per pixel
``(C, H, W)`` for Diag-*, averaged over the batch for the z-dependent variants).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..losses import VARIANCES, ar_elbo_reconstruction, kl_std_normal
from .base import LatentModel, ModelConfig


@dataclass
class ARELBOConfig(ModelConfig):
    """variance: one of ``iso-i``, ``iso-d``, ``diag-i``, ``diag-d`` (seed 002 Table 2)."""

    variance: str = "iso-i"

    def __post_init__(self):
        super().__post_init__()
        if self.variance not in VARIANCES:
            raise ValueError(f"unknown variance parameterization {self.variance!r}; choose one of {list(VARIANCES)}")

    def default_name(self) -> str:
        return f"ar-elbo-{self.variance}" + ("-2d" if self.latent_dim == 2 else "")


class ARELBO(LatentModel):
    """AR-ELBO model (seed 002 eq. 9, Table 2). Exposes :attr:`sigma2`, the current MLE of sigma_x^2."""

    family = "ar-elbo"
    config_class = ARELBOConfig

    def __init__(self, config: ARELBOConfig):
        super().__init__(config)
        shape = () if config.variance.startswith("iso") else tuple(config.image_shape)
        self.register_buffer("sigma2", torch.ones(shape))

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.posterior(x)
        x_hat = self.decode(self.reparameterize(mu, logvar))
        rec, s2 = ar_elbo_reconstruction(x, x_hat, self.config.variance)
        kl = kl_std_normal(mu, logvar).mean()
        s2 = s2.reshape(-1, *self.sigma2.shape).mean(0) if s2.dim() > self.sigma2.dim() else s2
        return {"loss": rec + kl, "rec": rec, "kl": kl, "sigma2": s2.mean(), "_sigma2_full": s2}

    def on_step(self, terms: dict[str, torch.Tensor]) -> None:
        self.sigma2.copy_(terms["_sigma2_full"])

    def sigma2_estimate(self) -> float:
        return float(self.sigma2.mean())
