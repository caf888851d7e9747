"""Plain deterministic autoencoder (AE), and the base class of the deterministic-encoder baselines.

Objective per image: ||x - D(E(x))||², the sum of squared errors over the D = C·H·W pixels on
[0, 1] (:func:`explorer.losses.squared_error`); the training loss is its batch mean. This is
the "AE" baseline of RAE (Ghosh et al., ICLR 2020, "From Variational to Deterministic
Autoencoders", Table 1: the RAE objective with β = λ = 0) and WAE's reconstruction cost
c(x, y) = ||x - y||² (Tolstikhin et al., ICLR 2018, §4).

Deterministic encoder: ``gaussian_encoder = False``. :meth:`DeterministicAE.encode` returns the
code z = E(x); :meth:`~DeterministicAE.posterior` raises, because there is no q(z|x) with a
variance; :meth:`~DeterministicAE.posterior_samples` returns the point mass, the code repeated.
Evaluation therefore reports ``kl`` and ``drift_kl`` as null and the Drift page shows ||z' - z||²
(see :func:`explorer.evaluate.drift`). Samples come from ``prior`` N(0, I) or from the ex-post
GMM fitted on the training codes (RAE's "ex-post density estimation", §3.2).

Networks (measured reason): the ``small`` profile builds :func:`explorer.nets.small_bn_nets`,
the small conv nets with batch norm, as LDC-VAE's small profile does and as every MNIST model of
the RAE authors' code has (``include_batch_norm: True`` for AE, RAE-*, WAE in its
``configurations/config.py``). Without batch norm the plain AE on the small nets blows ||z|| up
to ~430 and saturates the sigmoid within 50 Adam steps (lr 1e-3, batch 128, MNIST: per-image
SSE stuck at 84-90, test 80.9 after 400 steps); with it the same run reaches test SSE 10.8.
``paper`` builds the RAE architecture (:func:`explorer.nets.rae_nets`, RAE App. D).

**Under torchrun (DDP)** nothing changes: every term is a batch mean of per-image terms.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..losses import squared_error
from ..nets import build_nets
from .base import LatentModel, ModelConfig

# Config profile -> nets built (explorer.nets.PROFILES); see the module docstring for why
# "small" gets batch norm. Same mapping as LDC-VAE's deterministic-style nets.
NETS_FOR_PROFILE = {"small": "small-bn", "small-bn": "small-bn", "paper": "rae", "rae": "rae"}


@dataclass
class AEConfig(ModelConfig):
    """Plain AE: only the shared fields (``latent_dim``, ``profile``, ``image_shape``).

    Raises:
        ValueError: an unknown ``profile`` (allowed: the keys of :data:`NETS_FOR_PROFILE`).
    """

    def __post_init__(self):
        super().__post_init__()
        if self.profile not in NETS_FOR_PROFILE:
            raise ValueError(f"unknown profile {self.profile!r} for {type(self).__name__}; "
                             f"choose one of {sorted(NETS_FOR_PROFILE)}")

    def default_name(self) -> str:
        return "ae" + ("-2d" if self.latent_dim == 2 else "")


class DeterministicAE(LatentModel):
    """Base class for autoencoders with a deterministic encoder z = E(x) (AE, RAE, WAE).

    Public API as :class:`~explorer.models.base.LatentModel`, with ``encode(x)`` ``(B, C, H, W)``
    -> ``(B, d)`` the code itself. Subclasses add their regularizers to the loss by overriding
    :meth:`regularizers`.
    """

    config_class = AEConfig
    gaussian_encoder = False
    prior_in_objective = False  # no KL term: codes go wherever reconstruction puts them (Ghosh et al. 2020 §2)

    def build_networks(self, config: AEConfig) -> tuple[nn.Module, nn.Module]:
        """``(encoder, decoder)``: the encoder outputs the code ``(B, d)`` (no log-variance half)."""
        return build_nets(NETS_FOR_PROFILE[config.profile], config.image_shape, config.latent_dim,
                          config.latent_dim)

    # ---- public API -------------------------------------------------------------------------
    def posterior(self, x: torch.Tensor):
        """Not available: the encoder is deterministic, q(z|x) is the point mass at E(x).

        Raises:
            NotImplementedError: always; use :meth:`encode` for the code z = E(x).
        """
        raise NotImplementedError(f"{self.family} has a deterministic encoder z = E(x): there is no Gaussian "
                                  "q(z|x) = N(mu, var); use encode(x) for the code")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code z = E(x): ``(B, C, H, W)`` in [0, 1] -> ``(B, d)``.

        Raises:
            ValueError: ``x`` does not have the model's image shape.
        """
        self._check_images(x)
        return self.encoder(x)

    def posterior_samples(self, x: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws from the point-mass posterior δ(z - E(x)): the code repeated, ``(B, C, H, W)`` -> ``(B, n, d)``.

        ``generator`` is accepted for API compatibility and unused (nothing is random).

        Raises:
            ValueError: bad image shape, or ``n`` < 1.
        """
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        return self.encode(x)[:, None].repeat(1, n, 1)

    # ---- training ---------------------------------------------------------------------------
    def regularizers(self, x: torch.Tensor, z: torch.Tensor, x_hat: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        """The family's extra loss terms ``{name: (weight, value)}``, each value a scalar (batch
        mean), from the batch ``x (B, C, H, W)``, its codes ``z (B, d)`` and reconstructions
        ``x_hat (B, C, H, W)``. The plain AE has none."""
        return {}

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``rec`` + Σ weight · term over :meth:`regularizers`, on a batch ``x (B, C, H, W)``.

        Returns ``loss``, ``rec`` (batch mean of the per-image sum of squared errors on [0, 1]
        pixels) and every regularizer's unweighted value; no ``kl`` (there is no q(z|x)).
        """
        z = self.encode(x)
        x_hat = self.decode(z)
        rec = squared_error(x, x_hat).mean()
        terms = self.regularizers(x, z, x_hat)
        loss = rec
        for weight, value in terms.values():
            loss = loss + weight * value
        return {"loss": loss, "rec": rec, **{k: v for k, (_, v) in terms.items()}}


class AE(DeterministicAE):
    """Plain autoencoder: loss = batch mean of ||x - D(E(x))||² (per-image SSE). See the module docstring."""

    family = "ae"
    config_class = AEConfig
