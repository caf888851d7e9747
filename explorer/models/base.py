"""Base class and shared config for every latent-variable model in the explorer.

Public API (later issues and outside users rely on it):

- ``model.latent_dim``: d.
- ``model.encode(x)``: ``(B, C, H, W)`` in [0, 1] -> posterior mean ``(B, d)``.
- ``model.posterior(x)``: ``(mu, logvar)``, each ``(B, d)`` (Gaussian encoders).
- ``model.decode(z)``: ``(B, d)`` -> decoder mean ``(B, C, H, W)`` in [0, 1].
- ``model.sample(n, sampler="prior")``: ``(n, d)`` latent codes.
- ``model.samplers``: the sampler names this model offers: ``prior``; ``gmm-10`` once its GMM
  is fitted (stored in the checkpoint); ``gmm-100`` and ``two-stage`` when an ex-post sidecar is
  attached (:mod:`explorer.expost`, ``model.expost``); family extras after those (LDC-VAE's
  ``sampler-net``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..configs import DictConfig
from ..nets import build_nets
from ..samplers import GaussianMixtureSampler


@dataclass
class ModelConfig(DictConfig):
    """Fields every model family shares. Family configs subclass it.

    Attributes:
        latent_dim: d, the latent size.
        profile: architecture profile, ``small`` or ``paper`` (see :mod:`explorer.nets`).
        image_shape: ``(C, H, W)`` of the data.
    """

    latent_dim: int = 16
    profile: str = "small"
    image_shape: tuple = (1, 28, 28)

    def __post_init__(self):
        self.image_shape = tuple(int(v) for v in self.image_shape)
        if not isinstance(self.latent_dim, int) or self.latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive int, got {self.latent_dim!r}")

    def default_name(self) -> str:
        """The checkpoint name this configuration is shipped under (e.g. ``vae-2d``)."""
        raise NotImplementedError



class LatentModel(nn.Module):
    """A VAE-family model with a Gaussian encoder q(z|x) = N(mu(x), diag exp(logvar(x))).

    Subclasses implement :meth:`loss`. ``family`` is the registry name.
    """

    family: str = ""
    config_class = ModelConfig
    gaussian_encoder: bool = True  # False for implicit encoders (LDC-VAE): no closed-form q(z|x)
    trainer: str = "elbo"  # key of explorer.trainers.TRAINERS: the loop that trains this family
    unset_buffers: tuple[str, ...] = ()  # buffers that hold NaN until training sets them (not a damaged file)
    # False when the objective has no prior term (no KL, no prior matching): N(0, I) is then only a
    # control whose draws land where the encoder never put codes (LDC-VAE, AE, RAE)
    prior_in_objective: bool = True

    # Ex-post samplers from a sidecar file (explorer.samplers.expost.ExPostSamplers), or None. Not
    # a registered submodule: it is not part of the checkpoint's state dict. Set by attach_expost.
    expost = None
    # Set by explorer.checkpoint.load: the checkpoint's metadata (command, metrics, history, ...)
    # and its precomputed arrays (test codes, sampler codes, projections); empty on a fresh model.
    meta: dict
    arrays: dict[str, torch.Tensor]

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.meta, self.arrays = {}, {}
        self.config = config
        self.encoder, self.decoder = self.build_networks(config)
        self.gmm = GaussianMixtureSampler(config.latent_dim)  # the "gmm-10" sampler

    @classmethod
    def upgrade_config(cls, d: dict) -> dict:
        """A config dict as saved in an older checkpoint -> the current fields (identity here;
        families whose config gained fields override it). Used only when loading a checkpoint."""
        return d

    @classmethod
    def from_config(cls, config: ModelConfig, path=None, load=None) -> "LatentModel":
        """Build a fresh model for the checkpoint at ``path``. Families with outside parts (LSR-GAN's
        base VAE) look for them next to ``path`` and read them with ``load`` (a checkpoint loader,
        :func:`explorer.checkpoint.load`); the others ignore both. Raises ValueError for a bad config."""
        return cls(config)

    def build_networks(self, config: ModelConfig) -> tuple[nn.Module, nn.Module]:
        """``(encoder, decoder)``; the encoder outputs ``(mu, logvar)`` stacked, ``(B, 2d)``."""
        return build_nets(config.profile, config.image_shape, 2 * config.latent_dim, config.latent_dim)

    # ---- public API -------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.config.image_shape)

    def _check_images(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"expected images of shape (B, {', '.join(map(str, self.image_shape))}), "
                             f"got {tuple(x.shape)}")

    def _check_latents(self, z: torch.Tensor) -> None:
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected latents of shape (B, {self.latent_dim}), got {tuple(z.shape)}")

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian posterior q(z|x): ``(B, C, H, W)`` -> ``(mu, logvar)``, each ``(B, d)``.

        Raises:
            ValueError: ``x`` does not have the model's image shape.
        """
        self._check_images(x)
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior mean E_q[z|x]: ``(B, C, H, W)`` in [0, 1] -> ``(B, d)``."""
        return self.posterior(x)[0]

    def posterior_samples(self, x: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws z ~ q(z|x) per image: ``(B, C, H, W)`` -> ``(B, n, d)``.

        Raises:
            ValueError: bad image shape, or ``n`` < 1.
        """
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        mu, logvar = self.posterior(x)
        eps = torch.randn(mu.shape[0], n, mu.shape[1], generator=generator).to(mu)
        return mu[:, None] + (0.5 * logvar).exp()[:, None] * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder mean: ``(B, d)`` -> ``(B, C, H, W)`` in [0, 1].

        Raises:
            ValueError: ``z`` is not ``(B, latent_dim)``.
        """
        self._check_latents(z)
        return torch.sigmoid(self.decoder(z))

    @property
    def samplers(self) -> list[str]:
        """Names accepted by :meth:`sample`: ``prior``, ``gmm-10`` (once fitted), then the
        attached sidecar's ``gmm-100`` and ``two-stage``."""
        return (["prior"] + (["gmm-10"] if self.gmm.is_fitted else [])
                + (self.expost.samplers if self.expost is not None else []))

    def attach_expost(self, expost) -> None:
        """Hang ex-post samplers (:class:`explorer.samplers.expost.ExPostSamplers`, or None to remove
        them) on the model, on its device, outside its state dict."""
        if expost is not None:
            expost = expost.to(self.gmm.means.device).eval()
        object.__setattr__(self, "expost", expost)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self.expost is not None:  # .to()/.cpu()/.double() move the (unregistered) sidecar samplers too
            self.expost._apply(fn, recurse)
        return self

    def sample(self, n: int, sampler: str = "prior", generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` latent codes, ``(n, d)``, on the model's device, from the prior N(0, I),
        the GMM-10 (``gmm-10``) or an attached ex-post sampler (``gmm-100``, ``two-stage``).

        Raises:
            ValueError: ``sampler`` is not in :attr:`samplers`, or ``n`` is not positive.
        """
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        if sampler not in self.samplers:
            raise ValueError(f"model offers samplers {self.samplers}, not {sampler!r}")
        if sampler == "gmm-10":
            return self.gmm.sample(n, generator=generator)
        if self.expost is not None and sampler in self.expost.samplers:
            return self.expost.sample(n, sampler, generator=generator)
        dev = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator).to(dev)

    # ---- training ---------------------------------------------------------------------------
    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) (Kingma & Welling 2014)."""
        return mu + (0.5 * logvar).exp() * torch.randn_like(mu)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training objective on a batch ``(B, C, H, W)``.

        Returns a dict with ``loss`` (the scalar to minimise, batch mean of per-image nats)
        and every term apart (``rec``, ``kl``, extra terms, ``sigma2`` where learned), all scalars.
        """
        raise NotImplementedError

    #: The history key the convergence rule watches (:func:`explorer.training.converged`): the
    #: held-out reconstruction error (per-image SSE of decode(encode(x)), 002 Table 3's MSE). Not
    #: ``test_loss``: a relative rule needs a natural zero, and the Gaussian losses carry additive
    #: constants (D/2 log 2πσx² = 720 nats for the σx² = 1 VAE on 28 x 28), so 1 % of them is
    #: several nats whatever the model does.
    monitor_key: str = "test_mse"
    #: Samplers whose decoded images :func:`explorer.evaluate.epoch_monitor` checks after every epoch.
    monitor_samplers: tuple[str, ...] = ("prior",)

    def check_schedule(self, total_steps: int) -> None:
        """Refuse, before training starts, a run whose guaranteed ``total_steps`` optimiser steps (its
        minimum epochs) are too few for the model's own schedule. Raises ValueError; the base has none."""

    def eval_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every term of :meth:`loss` on held-out images ``x (B, C, H, W)``, detached scalars,
        with no side effects (no :meth:`on_step`, no parameter update), and ``mse``, the batch
        mean of the per-image SSE of decode(encode(x)). Call it in eval mode.
        Autograd stays on because some losses differentiate inside (RAE-GP's decoder Jacobian)."""
        with torch.enable_grad():
            terms = self.loss(x)
        out = {k: v.detach() for k, v in terms.items() if not k.startswith("_")}
        with torch.no_grad():
            out["mse"] = (x - self.decode(self.encode(x))).pow(2).flatten(1).sum(1).mean()
        return out

    def on_step(self, terms: dict[str, torch.Tensor]) -> None:
        """Hook after each optimiser step (AR-ELBO stores its sigma_x^2 estimate here)."""

    def sigma2_estimate(self) -> float | None:
        """Current scalar sigma_x^2 (mean over pixels where it is a vector); None when fixed by design."""
        return None
