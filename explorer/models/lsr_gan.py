"""LSR-GAN: a GAN generator trained against the encoder of a frozen VAE (seed 004, "Imagining
the Latent Space of a Variational Auto-Encoder").

Two-stage model (004 §2.2): the VAE is trained first and frozen; then a generator G(z) and a
DCGAN discriminator are trained "in the usual tick-tock fashion" with

- discriminator (eq. 3): L_D = -E_x log D(x) - E_z log(1 - D(G(z)));
- generator (eq. 4): L_G = -E_z log D(G(z)) - λ E_z log q(z | G(z)),

z ~ p(z) = N(0, I), the base VAE's prior, and q the frozen encoder's Gaussian posterior.

Readings where the paper is ambiguous:

1. **Signs of eq. 4.** The text writes L_G = E_z[log D(G(z))] + λ log q(z|G(z)) and calls the
   first term "the usual" GAN loss. Read as a quantity the generator *maximises*, it is the
   non-saturating generator loss (Goodfellow et al. 2014 §3) plus λ log q; we minimise its
   negative. Minimising it as printed would push G away from both the data and the encoder.
2. **Units of -log q(z|G(z)).** The full Gaussian negative log-density in nats, summed over
   the d latent dimensions (constant included; :func:`explorer.losses.gaussian_nll`), averaged
   over the batch, as the adversarial term is a batch mean per image.
3. **Architecture.** App. D uses a ResNet generator "the same as" the VAE decoder and a DCGAN
   discriminator; we keep the pairing with the project's profiles: G is the profile's decoder
   with batch norm (``small`` -> ``small-bn``, ``paper`` -> the AR-ELBO App. J.1 decoder, which
   has batch norm; for colour images 004 App. D's ResNet generator, :func:`explorer.nets.resnet_nets`;
   ``resnet`` -> that generator at any size), D is :func:`explorer.nets.dcgan_discriminator` scaled to 28 x 28.
   Optimiser (App. D): Adam, learning rate 2e-4, β1 = 0.5 (:mod:`explorer.adversarial`).
4. **Which q.** The base encoder's q(z|x) = N(μ(x), diag σ²(x)), in eval mode and frozen: its
   weights are not parameters of this model, are never in its state dict, and never train.
5. **No reward for an uncertain encoder** (``latent_term``). Taken literally (``nll``),
   -log q(z|G(z)) also falls when G makes the encoder unsure (σ(G(z)) large, off the data
   manifold), and against the sharp AR-ELBO Iso-I base the generator took that route (noise
   images, D(G(z)) ≈ 1e-4). The default, ``detached-variance``, evaluates the same log-density but
   stops the gradient through σ²(G(z)); the logged ``latent_nll`` is -log q(z|G(z)) either way.
6. **Which λ.** Eq. 4 weighs a GAN loss of order 1 nat against -log q(z|G(z)), whose scale is set
   by the base's posterior width (σ ≈ 0.04 per unit here against 004's ≈ 1); at λ = 1 the latent
   term swamps the discriminator and G(z) scores worse than the VAE's D(z), the opposite of 004
   Table 1. App. C.2's smallest λ, 0.01, kept the headline's direction against the first, collapsed
   base, and was the default until reading 7.
7. **λ in units of the base's posterior precision.** Against the retrained Iso-I base (σ² ≈ 1.6e-3
   per unit) even λ = 0.01 weighs the latent term ~6x above the adversarial one, and the prior
   samples G(z) get worse as λ grows while latent recovery ||μ(G(z)) - z||² gets better. Measured
   (MNIST, first 20k images, 3 epochs, classifier FD of 2,000 G(z)): λ = 0.01: FD 901, recovery
   1.83; λ = 0.002: 622, 3.02; λ = 5e-4: 547, 5.39; λ = 0: 543, 26.7. λ = 5e-4 (λ/σ² ≈ 0.3, the
   order of the adversarial loss, as 004's λ of order 0.01-1 is against its σ ≈ 1) keeps the plain
   GAN's sample quality and recovers z 5x better than λ = 0, so it is the default (``lsr-gan``),
   with the λ = 0 control and a larger λ beside it (reading 8; docs/readings.md).
8. **The sweep's upper end: λ = 2e-3, not a literal 1** (``lsr-gan-lambda0.002``). App. C.2 shows that
   raising λ lowers reconstruction error and imagination variance; its figures use λ = 1 against
   posteriors of width ≈ 1. Against these bases (mean posterior variance 7.7e-4 per unit on MNIST,
   2.1e-3 on Fashion-MNIST, 2,000 test images) a literal λ = 1 is 500-1,300x that, and the 30-epoch
   λ = 1 files drew speckle on both datasets (classifier FD of G(z), z ~ N(0, I), n = 10,000: 1,719 on
   MNIST, 496 on Fashion-MNIST; MNIST gmm-10 class entropy 0.83). λ = 2e-3 is 004's λ ≈ 1-3 in
   posterior-precision units (λ/σ² ≈ 2.6 on MNIST, 1.0 on Fashion-MNIST) and 4x the default. Measured
   (30 epochs, batch 64, on the shipped Iso-I bases; λ = 2e-3 / 5e-4 / 0): recon MSE of G(μ(x)) 19.5 /
   23.7 / 105.1 on MNIST and 29.3 / 32.4 / 156.4 on Fashion-MNIST, latent recovery 4.51 / 6.47 / 31.3
   and 6.29 / 8.65 / 31.5; classifier FD of 10,000 prior samples 67.1 / 47.3 / 32.6 and 36.7 / 31.2 /
   21.0 (base D(z): 593, 276), class entropy 0.996 and 0.997: App. C.2's direction, with clean digits
   and garments.

The base VAE is a separate checkpoint. This model's config records its path and the SHA-256
of its file; building the model (training or loading) reads that file, and refuses it when the
hash differs (:class:`BaseMismatch`). On load the base is looked for next to the LSR-GAN
checkpoint first (so a moved ``checkpoints/`` folder still works), then at the recorded path.

Public API as every model: ``decode(z)`` is G(z) (sigmoid of its logits, [0, 1]); ``encode``,
``posterior`` and ``posterior_samples`` are the base encoder's; ``sample(n, "prior")`` draws
p(z) = N(0, I); ``sample(n, "gmm-10")`` the GMM on the base encoder's training codes.

**Under torchrun (DDP)** the generator (``decoder``) and the discriminator are each wrapped in
DistributedDataParallel for the step (:func:`explorer.adversarial.train_adversarial`); each rank
draws its own z for its share of the batch; the frozen base is not wrapped (it never trains).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..io import file_sha256
from ..layout import EXT
from ..losses import gaussian_nll
from ..nets import build_nets, dcgan_discriminator
from ..samplers import GaussianMixtureSampler
from .base import LatentModel, ModelConfig

DEFAULT_LAMBDA = 5e-4  # reading 7 in the module docstring
DEFAULT_BASE = "ar-elbo-iso-i"  # 004 App. A: the VAE's log-MSE reconstruction term is AR-ELBO Iso-I
GENERATOR_NETS = {"small": "small-bn", "paper": "paper", "resnet": "resnet"}
COLOUR_GENERATOR_NETS = {"paper": "resnet"}  # 004 App. D's ResNet generator for colour images (reading 3)
LATENT_TERMS = ("detached-variance", "nll")


class BaseMismatch(ValueError):
    """The base VAE checkpoint is missing, not usable as a base, or not the one this LSR-GAN was trained on."""


@dataclass
class LSRGANConfig(ModelConfig):
    """LSR-GAN settings.

    Attributes:
        lam: λ of eq. 4, the weight of -log q(z|G(z)); 0 gives a plain GAN on the same prior
            (the control for the λ term). >= 0. Default 5e-4 (reading 7).
        base_path: the frozen VAE checkpoint; empty means ``ar-elbo-iso-i`` next to this
            model's checkpoint (filled in with the path used).
        base_sha256: SHA-256 of the base file; empty before training (filled in from the file),
            checked on every later build.
        disc_width: channels of the discriminator's first conv (App. D: 32).
        latent_term: ``detached-variance`` (default) or ``nll`` (literal eq. 4); reading 5.
        latent_dim: 0 means "the base's d" (filled in); any other value must equal it.
    """

    latent_dim: int = 0
    lam: float = DEFAULT_LAMBDA
    base_path: str = ""
    base_sha256: str = ""
    disc_width: int = 32
    latent_term: str = "detached-variance"

    def __post_init__(self):
        if self.latent_dim == 0:  # resolved from the base when the model is built
            self.image_shape = tuple(int(v) for v in self.image_shape)
        else:
            super().__post_init__()
        if self.profile not in GENERATOR_NETS:
            raise ValueError(f"unknown profile {self.profile!r} for lsr-gan; choose one of {sorted(GENERATOR_NETS)}")
        if not self.lam >= 0:
            raise ValueError(f"lam (λ of eq. 4) must be >= 0, got {self.lam!r}")
        if self.latent_term not in LATENT_TERMS:
            raise ValueError(f"unknown latent_term {self.latent_term!r}; choose one of {list(LATENT_TERMS)}")
        if not isinstance(self.disc_width, int) or self.disc_width < 1:
            raise ValueError(f"disc_width must be a positive int, got {self.disc_width!r}")

    def default_name(self) -> str:
        return "lsr-gan" if self.lam == DEFAULT_LAMBDA else f"lsr-gan-lambda{self.lam:g}"


def resolve_base(config: LSRGANConfig, near: Path | None = None, load=None) -> LatentModel:
    """Find, verify and load the base VAE of ``config``; fills ``base_path``, ``base_sha256``
    and ``latent_dim`` when empty.

    Looks for the base file next to ``near`` (a checkpoint path; by the recorded file name, or
    ``ar-elbo-iso-i`` when none is recorded), then at ``config.base_path`` (when ``near`` is a saved
    checkpoint, only inside its checkpoint root ``near/../..``: a file from elsewhere cannot make
    the loader read files outside its folder), and reads it with
    ``load(path, expost=False)`` (:func:`explorer.checkpoint.load`, handed in so that the model
    layer never imports the checkpoint layer above it).

    Raises:
        BaseMismatch: no base file; its SHA-256 differs from ``config.base_sha256``; it is not a
            Gaussian-encoder model; its latent size or image shape differs from the config.
        explorer.checkpoint.CheckpointError: the base file is not a readable checkpoint.
    """
    if load is None:
        raise BaseMismatch("lsr-gan: building it needs a checkpoint loader for its base VAE; use "
                           "explorer.checkpoint.build_model or explorer.load, or pass base=")
    name = Path(config.base_path).name if config.base_path else DEFAULT_BASE + EXT
    candidates = ([Path(near).parent / name] if near is not None else []) + \
                 ([Path(config.base_path)] if config.base_path else [])
    if near is not None and Path(near).is_file():  # loading a saved checkpoint: its base must live in its own
        root = Path(near).resolve().parent.parent  # checkpoint root (<root>/<dataset>/), never anywhere on disk
        candidates = [p for p in candidates if p.resolve().is_relative_to(root)]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        tried = ", ".join(str(p) for p in candidates) or "(no path: pass --vae PATH)"
        raise BaseMismatch(f"lsr-gan: base VAE checkpoint not found; tried {tried}. Train it first "
                           f"(python train.py --model ar-elbo --variance iso-i --dataset ...) or pass --vae PATH")
    digest = file_sha256(found)
    if config.base_sha256 and digest != config.base_sha256:
        raise BaseMismatch(f"lsr-gan: base VAE {found} has SHA-256 {digest[:12]}..., but this LSR-GAN was trained "
                           f"on {config.base_path} with SHA-256 {config.base_sha256[:12]}...; the base was retrained "
                           f"or replaced. Retrain the LSR-GAN on it (python train.py --model lsr-gan --vae {found} ...) "
                           f"or restore the original base file")
    base = load(found, expost=False)  # the base's own ex-post samplers play no part here
    if not base.gaussian_encoder:
        raise BaseMismatch(f"lsr-gan: base {found} is a {base.family} model with an implicit encoder; LSR-GAN needs "
                           f"a Gaussian q(z|x) (any vae, ar-elbo or consistency-vae checkpoint)")
    if config.latent_dim not in (0, base.latent_dim):
        raise BaseMismatch(f"lsr-gan: latent_dim {config.latent_dim} does not match the base VAE's {base.latent_dim} "
                           f"({found}); leave --latent-dim out to take the base's")
    if tuple(config.image_shape) != tuple(base.image_shape):
        raise BaseMismatch(f"lsr-gan: image shape {tuple(config.image_shape)} does not match the base VAE's "
                           f"{tuple(base.image_shape)} ({found}); was it trained on another dataset?")
    config.latent_dim, config.base_sha256 = base.latent_dim, digest
    config.base_path = config.base_path or str(found)
    for p in base.parameters():
        p.requires_grad_(False)
    return base.eval()


class LSRGAN(LatentModel):
    """LSR-GAN (seed 004 §2.2, eq. 3-4): generator G, discriminator, and a frozen base VAE.

    ``model.base`` is the frozen base (eval mode, no gradients, not a submodule: it is not in
    ``parameters()`` or ``state_dict()``, and ``.to()`` moves it along). ``model.decoder`` is G,
    ``model.discriminator`` the discriminator (logits). Trained by
    :func:`explorer.adversarial.train_adversarial`, not by ``loss``.
    """

    family = "lsr-gan"
    config_class = LSRGANConfig
    trainer = "adversarial"

    def __init__(self, config: LSRGANConfig, base: LatentModel | None = None, near: Path | None = None, load=None):
        nn.Module.__init__(self)  # not LatentModel.__init__: the encoder is the base's, not ours
        object.__setattr__(self, "base", base if base is not None else resolve_base(config, near, load))
        self.meta, self.arrays = {}, {}
        self.config = config
        nets = GENERATOR_NETS[config.profile]
        if config.image_shape[0] == 3:
            nets = COLOUR_GENERATOR_NETS.get(config.profile, nets)
        self.decoder = build_nets(nets, config.image_shape, 1, config.latent_dim)[1]
        self.discriminator = dcgan_discriminator(config.image_shape, config.disc_width)
        self.gmm = GaussianMixtureSampler(config.latent_dim)

    @classmethod
    def from_config(cls, config: LSRGANConfig, path: str | Path | None = None, load=None) -> "LSRGAN":
        """Build for the checkpoint at ``path``: the base is looked for next to it first and read
        with ``load`` (see :func:`resolve_base`)."""
        return cls(config, near=Path(path) if path is not None else None, load=load)

    @property
    def encoder(self) -> nn.Module:
        """The frozen base VAE's encoder."""
        return self.base.encoder

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self.base._apply(fn, recurse)  # keep the (unregistered) base on the same device and dtype
        return self

    # ---- public API -------------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The base encoder's q(z|x): ``(B, C, H, W)`` -> ``(mu, logvar)``, each ``(B, d)``."""
        self._check_images(x)
        return self.base.posterior(x)

    def imagine(self, x: torch.Tensor, n: int, generator: torch.Generator | None = None,
                temperature: float = 1.0) -> torch.Tensor:
        """Imaginings (004 Fig. 1-3): G(z) for ``n`` draws z ~ q(z|x) per image.

        ``temperature`` T scales the posterior's standard deviation, z = μ(x) + T σ(x) ε: the AR-ELBO
        Iso-I base has sharp posteriors (σ of a few hundredths per unit against the prior's 1), so at
        T = 1 the draws, and G's images of them, are nearly identical; a larger T shows what G draws
        around the code.

        ``(B, C, H, W)`` -> ``(B, n, C, H, W)`` in [0, 1].

        Raises:
            ValueError: bad image shape, ``n`` < 1, or ``temperature`` <= 0.
        """
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        mu, logvar = self.posterior(x)
        eps = torch.randn(mu.shape[0], n, mu.shape[1], generator=generator).to(mu)
        z = mu[:, None] + temperature * (0.5 * logvar).exp()[:, None] * eps  # (B, n, d)
        return self.decode(z.flatten(0, 1)).view(x.shape[0], n, *self.image_shape)

    # ---- training (eq. 3-4) -------------------------------------------------------------------
    def loss(self, x: torch.Tensor):
        """Not used: LSR-GAN trains with two optimisers (:func:`explorer.adversarial.train_adversarial`).

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError("lsr-gan trains adversarially: use explorer.adversarial.train_adversarial")

    monitor_key = "fd_prior"  # GAN losses do not fall as G improves; the Fréchet distance of G(z) does

    def eval_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. 3 and eq. 4 terms on held-out images ``x (B, C, H, W)`` and B fresh z ~ N(0, I)
        (no update): ``d_loss``, ``d_real``, ``d_fake``, ``g_loss``, ``g_adv``, ``latent_nll``."""
        z = torch.randn(x.shape[0], self.latent_dim, device=x.device, dtype=x.dtype)
        fake = self.decode(z)
        terms = {**self.discriminator_loss(x, fake), **self.generator_loss(z, fake)}
        return {k: v.detach() for k, v in terms.items()}

    def latent_nll(self, z: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """-log q(z|images) under the frozen base encoder: ``(B, d)``, ``(B, C, H, W)`` -> ``(B,)`` nats."""
        mu, logvar = self.base.posterior(images)
        if self.config.latent_term == "detached-variance":
            logvar = logvar.detach()
        return gaussian_nll(z, mu, logvar)

    def discriminator_loss(self, x: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. 3 on real ``x`` and generated ``fake`` images, both ``(B, C, H, W)`` in [0, 1].

        Returns ``d_loss`` (batch mean, nats) and ``d_real``/``d_fake``, the mean D(x) and
        D(G(z)) probabilities. ``fake`` is detached: this loss never reaches G.
        """
        real_logits, fake_logits = self.discriminator(x), self.discriminator(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        return {"d_loss": d_loss, "d_real": torch.sigmoid(real_logits).mean().detach(),
                "d_fake": torch.sigmoid(fake_logits).mean().detach()}

    def generator_loss(self, z: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. 4 (reading 1) for codes ``z (B, d)`` and ``fake = G(z)`` ``(B, C, H, W)``.

        Returns ``g_loss`` = ``g_adv`` + λ ``latent_nll``: g_adv = -mean log D(G(z)) (nats),
        latent_nll = mean -log q(z|G(z)) (nats, summed over d; its gradient per reading 5).
        latent_nll is computed (for the log) at λ = 0 too.
        """
        logits = self.discriminator(fake)
        g_adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        nll = self.latent_nll(z, fake).mean()
        return {"g_loss": g_adv + self.config.lam * nll, "g_adv": g_adv, "latent_nll": nll}
