"""LDC-VAE: a noise-input (implicit) encoder and a sampler net, both trained with SVGD towards
a Gibbs posterior (seed 000, "LDC-VAE: A Latent Distribution Consistency Approach to VAEs").

Pieces, with the paper's equations:

- **Encoder** E(x, ε), ε ~ N(0, I) image-shaped noise that enters through an extra conv layer
  added to the first conv layer's output (000 Fig. 1b, §IV.A). Its output is a sample
  z ~ q(z|x) directly, with no reparameterization. :meth:`LDCVAE.encode` returns the posterior
  mean, estimated as the average over ``mean_draws`` fixed noise draws (common random numbers,
  stored in the checkpoint, so ``encode`` is deterministic and batch-independent).
- **Decoder** D(z), trained with L_REC = MSE(x, D(z)) (eq. 7; Algorithm 1 step 2).
- **Networks.** ``--profile paper`` is the RAE architecture (§V.A); ``small`` is the project's
  small conv net with batch norm added as in RAE (:func:`explorer.nets.small_bn_nets`): with
  no KL term to hold the latent scale, the small net without batch norm inflates ||z|| and
  saturates the decoder within ~20 steps, even as a plain autoencoder (measured). The sampler
  net's decoder pass runs the decoder in eval mode (running batch-norm statistics), i.e. the
  decoder that will decode its samples.
- **Gibbs posterior** (eq. 13): log p(z|x) = -||x - D(z)||² / σ² + const, with
  ||·||² the per-image sum of squares.
- **Encoder update** (eq. 15-16; Algorithm 1 steps 1-4): M particles z_m = E(x, ε_m) per image;
  the score ∇_z log p(z|x) by autograd through D; the SVGD direction φ within each image's
  particle set (RBF kernel, median heuristic h = med²/log M); φ is held constant and pushed
  into the encoder weights through z: the encoder's gradient is -Σ φ(z)·∂z/∂θ (eq. 16).
- **Sampler net** S(ε_s), ε_s ~ N(0, I) image-shaped, the RAE encoder's architecture (§V.A),
  trained in parallel with SVGD (Algorithm 1 steps 5-7) towards the aggregate posterior
  (readings 4-5); ``sample(n, "sampler-net")``. Its n_s particles per step form one SVGD set.

Readings where the paper is ambiguous (the argument and the measurements behind each are in
``docs/readings.md``):

1. **σ² of the Gibbs posterior** (§V.A, "the variance of ||X - D(z)|| in a batch"): the variance of
   the batch's residual entries, i.e. the per-pixel residual variance, detached. The literal
   variance of per-image norms goes to 0 when every image is reconstructed equally well; it is
   logged as ``sigma2_norm_reading``.
2. **Sign and scale in Algorithm 1** (step 3's ∇_z L_REC): the score of eq. 13,
   ∇_z log p(z|x) = -∇_z ||x - D(z)||² / σ².
3. **What trains what** (step 4): L_REC reaches the encoder through z as well as the decoder
   (``rec_to_encoder=True``), as written; test SSE 15.58 vs 15.72 without it.
4. **Which posterior the sampler net targets** (step 6 needs an x that S(ε_s) never sees): the
   aggregate posterior, through a kernel density over the latest encoder particles
   (``sampler_target="encoder-kde"``, :func:`kde_score`); the minibatch Gibbs mixture
   (``gibbs-mixture``) drew near-copies of 12 training images.
5. **SVGD's variance collapse in d = 16**: the sampler's kernel width is
   ``sampler_kernel_scale`` x med²/log n, default 4 (the paper's h left 100 free particles on
   N(0, I_16) at std 0.52); the encoder keeps the paper's h.
6. **The sampler's input noise (ε, k), and SVGD sets per k** (§IV.B allows "an arbitrary
   distribution" for f_s(ε)): S(ε, k) = net(ε) + offset_k, k ~ Uniform{1..K}, seeded from K
   encoder particles (:meth:`LDCVAE.seed_sampler`); readings 4-5 alone drew "1"s for 99 % of
   MNIST samples, free SVGD particles on the same target kept every class.
7. **When the sampler trains: on the converged encoder** (``sampler_start`` = 18,000 steps, 30
   epochs at batch 100): trained jointly from step 3,000 its Fréchet distance rose from 65 to 175
   while the encoder's codes kept spreading; ``train.py`` refuses runs too short to train the
   sampler for 3,000 steps (:meth:`LDCVAE.check_schedule`).
8. **The KDE's width: chosen by held-out likelihood** (``sampler_kde_bandwidth="cv"``,
   :func:`cv_bandwidth_scale`). Scott's rule is the width for one Gaussian; the codes form ten
   clusters, where it over-smooths. The shipped MNIST sampler net matched its Scott-width target
   (classifier FD 114 against the target's own 125, 2,000 samples) and so missed the FD target
   (105 at n = 10,000 against gmm-10's 49); the held-out log-likelihood of the same bank peaks at
   0.7 x Scott, where samples straight from the KDE score FD 63 with memorisation median 17.7
   (test images 19.2). Checkpoints trained before this reading keep ``scott``. Measured after a
   full MNIST run under ``cv`` (35 epochs): FD 63 against gmm-10's 43, but the sampler net's
   nearest-training-image median fell to 6.25 (test images 19.2): copies (docs/readings.md). So
   ``scott`` stays the default; ``cv`` is kept as an option.
9. **After training, the sampler net refitted towards a GMM of the aggregate posterior** on the
   frozen encoder (:mod:`explorer.models.ldc_refit`, ``train.py --model ldc-sampler``): a smooth
   target without a mode per training image, and one that stays put while the sampler trains.
   The checkpoint records it under ``meta["sampler_refit"]``; the measurements are in
   docs/readings.md.

**Under torchrun (DDP).** The encoder's SVGD sets stay per image (each rank moves the
particles of its own images; nothing crosses ranks), the code bank that the ``encoder-kde``
target is built on gathers every rank's particles each step (so every rank holds the same bank),
the sampler's seeding is rank 0's draw sent to all, and each rank draws its own sampler sets,
whose gradients DDP averages. σ² of the Gibbs posterior stays the rank's batch statistic.

Units: ``rec`` is the per-image sum of squared errors on [0, 1] pixels (the decoder's loss is
its batch mean; MSE up to the constant D), ``sigma2`` is per pixel. The surrogate losses for the
encoder and sampler have gradients -φ·∂z/∂θ; their values carry no meaning and are not logged.
``phi_enc`` and ``phi_sampler`` log the mean SVGD step size ||φ||.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..distributed import broadcast_, gather
from ..nets import build_nets
from ..svgd import amortized_svgd_loss, svgd_direction, svgd_sample
from .base import LatentModel, ModelConfig

# Architecture per profile: the paper profile of LDC-VAE is the RAE network (000 §V.A).
# The small profile gets batch norm like the RAE nets (see explorer.nets.small_bn_nets for why).
NETS_FOR_PROFILE = {"small": "small-bn", "small-bn": "small-bn", "paper": "rae", "rae": "rae"}
SAMPLER_TARGETS = ("encoder-kde", "gibbs-mixture")
KDE_BANDWIDTHS = ("cv", "scott")  # how the encoder-kde target's width is chosen (reading 8)
SAMPLER_MIN_STEPS = 3000  # sampler steps after sampler_start that a run must leave (reading 7)


@dataclass
class LDCVAEConfig(ModelConfig):
    """LDC-VAE settings.

    Attributes:
        particles: M, encoder particles (noise draws) per image for SVGD (eq. 15); >= 2. The paper
            gives no M; 4 (the first checkpoints used 8, which doubles the time per step on a CPU:
            a 30-epoch run on 2 shared cores took ~18 min per epoch against ~7 at 4).
        sampler_particles: particles in each of the sampler net's SVGD sets per step; 0 means
            the batch size (one set). >= 2 otherwise.
        sampler_components: K, the component indices k of the sampler's input noise (ε, k),
            k ~ Uniform{1..K} (reading 6); 0 = Gaussian noise alone (the earlier readings).
        sampler_sets: with K > 0, the components drawn per step, each with its own SVGD set of
            ``sampler_particles`` particles (the encoder's per-image sets, with k for x).
        sampler_start: training step at which the sampler's component offsets are seeded from
            the code bank and its training begins (readings 6-7): once the encoder's codes have
            stopped moving (18,000 = 30 epochs of 60k images at batch 100). 0: the sampler trains from the first step,
            unseeded (offsets at zero), as in Algorithm 1.
        mean_draws: noise draws averaged by ``encode`` for the posterior mean.
        rec_to_encoder: L_REC's gradient also reaches the encoder (Algorithm 1 step 4 updates
            E and D with both gradients); False trains the encoder by SVGD alone.
        sampler_target: the score the sampler net's SVGD follows (reading 4 in the module
            docstring): ``encoder-kde`` (default), the encoder's aggregate posterior q(z)
            estimated by an RBF kernel density over the latest ``code_bank`` encoder
            particles; ``gibbs-mixture``, the minibatch mixture of eq. 13 posteriors through
            the decoder (the first reading; measured to collapse, kept for comparison).
        sampler_kernel_scale: multiplies the median-heuristic bandwidth of the sampler's SVGD
            kernel (1 = the paper's h = med²/log n); > 0. Counters SVGD's variance collapse
            in d = 16 with ~100 particles (measured; see reading 5).
        code_bank: encoder particles kept (first in, first out) for the ``encoder-kde``
            target; >= 2.
        sampler_kde_bandwidth: the ``encoder-kde`` target's kernel width (reading 8): ``scott``
            (default), Scott's rule; ``cv``, the multiple of Scott's rule in :data:`KDE_SCALES`
            that maximises the held-out log-likelihood of half the bank under a KDE over the other
            half (:func:`cv_bandwidth_scale`), chosen at seeding and every :data:`KDE_CV_EVERY`
            steps. ``cv`` met the FD target on MNIST but its sampler net copied training images
            (docs/readings.md, reading 8), so it is not the default.
    """

    particles: int = 4
    sampler_particles: int = 32
    mean_draws: int = 16
    rec_to_encoder: bool = True
    sampler_target: str = "encoder-kde"
    sampler_kernel_scale: float = 4.0
    code_bank: int = 8192
    sampler_components: int = 256
    sampler_sets: int = 4
    sampler_start: int = 18_000
    sampler_kde_bandwidth: str = "scott"

    def __post_init__(self):
        super().__post_init__()
        if self.profile not in NETS_FOR_PROFILE:
            raise ValueError(f"unknown profile {self.profile!r} for ldc-vae; choose one of {sorted(NETS_FOR_PROFILE)}")
        if not isinstance(self.particles, int) or self.particles < 2:
            raise ValueError(f"particles must be an int >= 2 (SVGD needs a set), got {self.particles!r}")
        if self.sampler_particles == 1 or self.sampler_particles < 0:
            raise ValueError(f"sampler_particles must be 0 (= batch size) or >= 2, got {self.sampler_particles!r}")
        if self.mean_draws < 1:
            raise ValueError(f"mean_draws must be >= 1, got {self.mean_draws!r}")
        if self.sampler_target not in SAMPLER_TARGETS:
            raise ValueError(f"unknown sampler_target {self.sampler_target!r}; choose one of {list(SAMPLER_TARGETS)}")
        if not self.sampler_kernel_scale > 0:
            raise ValueError(f"sampler_kernel_scale must be > 0, got {self.sampler_kernel_scale!r}")
        if self.code_bank < 2:
            raise ValueError(f"code_bank must be >= 2, got {self.code_bank!r}")
        if self.sampler_kde_bandwidth not in KDE_BANDWIDTHS:
            raise ValueError(f"unknown sampler_kde_bandwidth {self.sampler_kde_bandwidth!r}; choose one of "
                             f"{list(KDE_BANDWIDTHS)}")
        if self.sampler_components < 0 or self.sampler_start < 0:
            raise ValueError(f"sampler_components and sampler_start must be >= 0, got {self.sampler_components!r} "
                             f"and {self.sampler_start!r}")
        if self.sampler_components and not (self.sampler_particles >= 2 and 1 <= self.sampler_sets <= self.sampler_components):
            raise ValueError(f"with sampler_components = {self.sampler_components}, sampler_particles must be >= 2 and "
                             f"sampler_sets in [1, {self.sampler_components}]; got {self.sampler_particles!r} and "
                             f"{self.sampler_sets!r}")

    def default_name(self) -> str:
        return "ldc-vae" + ("-2d" if self.latent_dim == 2 else "")


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """Run ``module`` in eval mode (batch norm uses running statistics and leaves them alone)."""
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)


class NoiseInputEncoder(nn.Module):
    """E(x, ε): a conv encoder whose first conv output gets a conv of the noise added (000 Fig. 1b).

    ``forward(x, eps)``: x ``(B, C, H, W)``, eps ``(B, C, H, W)`` -> z ``(B, d)``.
    """

    def __init__(self, net: nn.Sequential):
        super().__init__()
        first = net[0]
        if not isinstance(first, nn.Conv2d):
            raise ValueError(f"the encoder must start with a Conv2d, got {type(first).__name__}")
        self.first, self.rest = first, net[1:]
        self.noise_conv = nn.Conv2d(first.in_channels, first.out_channels, first.kernel_size, first.stride,
                                    first.padding, bias=False)

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self.rest(self.first(x) + self.noise_conv(eps))


class LDCVAE(LatentModel):
    """LDC-VAE (seed 000 §IV, Algorithm 1). Implicit encoder: :meth:`posterior` is not defined."""

    family = "ldc-vae"
    config_class = LDCVAEConfig
    gaussian_encoder = False
    unset_buffers = ("gibbs_sigma2",)  # NaN until the first training step records σ²
    prior_in_objective = False  # no KL term (eq. 15-16): generation goes through the sampler net (§V.B)

    def __init__(self, config: LDCVAEConfig):
        super().__init__(config)
        nets = NETS_FOR_PROFILE[config.profile]
        self.sampler_net = build_nets(nets, config.image_shape, config.latent_dim, config.latent_dim)[0]
        if config.sampler_components:  # reading 6: the offset of each noise component k
            self.sampler_offsets = nn.Parameter(torch.zeros(config.sampler_components, config.latent_dim))
        self.register_buffer("steps_done", torch.tensor(0, dtype=torch.long))  # training steps taken (resume-safe)
        g = torch.Generator().manual_seed(0)
        self.register_buffer("mean_noise", torch.randn(config.mean_draws, *config.image_shape, generator=g))
        self.register_buffer("gibbs_sigma2", torch.tensor(float("nan")))  # σ² of the latest training step
        self.register_buffer("kde_scale", torch.tensor(1.0))  # the KDE target's width / Scott's rule (reading 8)

    @classmethod
    def upgrade_config(cls, d: dict) -> dict:
        """A checkpoint's config is read as what it was trained with: saved before reading 6 (no
        ``sampler_components``), one Gaussian-noise SVGD set of the batch size from step 0; saved
        before reading 8 (no ``sampler_kde_bandwidth``), Scott's rule."""
        d = {"sampler_kde_bandwidth": "scott", **d}
        if "sampler_components" in d:
            return d
        return {**d, "sampler_components": 0, "sampler_start": 0, "sampler_particles": d.get("sampler_particles", 0)}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before reading 6 have no step counter (their sampler was trained from step 0),
        # before reading 8 no KDE scale (Scott's rule, scale 1)
        state_dict.setdefault(prefix + "steps_done", torch.tensor(0, dtype=torch.long))
        state_dict.setdefault(prefix + "kde_scale", torch.tensor(1.0))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def build_networks(self, config: LDCVAEConfig) -> tuple[nn.Module, nn.Module]:
        enc, dec = build_nets(NETS_FOR_PROFILE[config.profile], config.image_shape, config.latent_dim,
                              config.latent_dim)
        return NoiseInputEncoder(enc), dec

    # ---- public API -------------------------------------------------------------------------
    def posterior(self, x: torch.Tensor):
        """Not available: the LDC-VAE encoder is implicit (q(z|x) has no closed form).

        Raises:
            NotImplementedError: always; use :meth:`encode` or :meth:`posterior_samples`.
        """
        raise NotImplementedError("ldc-vae has an implicit encoder E(x, eps): q(z|x) has no closed form; "
                                  "use encode(x) for its mean or posterior_samples(x, n) for draws")

    def posterior_samples(self, x: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws z = E(x, ε), ε ~ N(0, I), per image: ``(B, C, H, W)`` -> ``(B, n, d)``.

        Raises:
            ValueError: bad image shape, or ``n`` < 1.
        """
        self._check_images(x)
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        eps = torch.randn(x.shape[0] * n, *self.image_shape, generator=generator).to(x)
        return self.encoder(x.repeat_interleave(n, 0), eps).view(x.shape[0], n, -1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior mean, (1/K) Σ_k E(x, ε_k) over the K stored noise draws: ``(B, C, H, W)`` -> ``(B, d)``.

        Raises:
            ValueError: ``x`` does not have the model's image shape.
        """
        self._check_images(x)
        k = self.mean_noise.shape[0]
        eps = self.mean_noise.repeat(x.shape[0], 1, 1, 1)
        return self.encoder(x.repeat_interleave(k, 0), eps).view(x.shape[0], k, -1).mean(1)

    @property
    def samplers(self) -> list[str]:
        return super().samplers + ["sampler-net"]

    def sample(self, n: int, sampler: str = "prior", generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, d)`` codes from ``prior`` N(0, I), the fitted ``gmm-10``, the sidecar's ``gmm-100``
        and ``two-stage`` (when attached), or the ``sampler-net`` S(ε).

        Raises:
            ValueError: unknown sampler, or ``n`` < 1.
        """
        if sampler != "sampler-net":
            return super().sample(n, sampler, generator)
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        with torch.no_grad():  # codes to decode or plot, never a graph to the sampler net
            return self.sampler_codes(n, generator=generator)

    def sampler_codes(self, n: int, generator: torch.Generator | None = None,
                      components: torch.Tensor | None = None) -> torch.Tensor:
        """S(ε, k) for ``n`` draws, ``(n, d)``, with the autograd graph (training uses it).

        ε ~ N(0, I) image-shaped and, with K = ``sampler_components`` > 0, k ~ Uniform{0..K-1}
        (or the given ``components (n,)``): S(ε, k) = sampler_net(ε) + offset_k (reading 6).
        Both are drawn on the CPU from ``generator``, ε first.
        """
        eps = torch.randn(n, *self.image_shape, generator=generator).to(self.mean_noise)
        z = self.sampler_net(eps)
        if self.config.sampler_components:
            k = torch.randint(self.config.sampler_components, (n,), generator=generator) if components is None \
                else components
            z = z + self.sampler_offsets[k.to(z.device)]
        return z

    # ---- training ---------------------------------------------------------------------------
    def gibbs_log_posterior(self, x: torch.Tensor, x_hat: torch.Tensor, sigma2: torch.Tensor | float) -> torch.Tensor:
        """log p(z|x) + const = -||x - D(z)||² / σ² (eq. 13): ``(B, C, H, W)`` twice -> ``(B,)``."""
        return -(x - x_hat).pow(2).flatten(1).sum(1) / sigma2

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One step of Algorithm 1 on ``x (B, C, H, W)``: decoder L_REC, encoder and sampler SVGD."""
        b, m, d = x.shape[0], self.config.particles, self.latent_dim
        # Steps 1-2: M encoder particles per image, reconstruction loss for the decoder.
        xr = x.repeat_interleave(m, 0)
        z = self.encoder(xr, torch.randn_like(xr))  # (B*M, d), graph to the encoder
        zd = z if self.config.rec_to_encoder else z.detach().requires_grad_(True)
        x_hat = torch.sigmoid(self.decoder(zd))
        sse = (xr - x_hat).pow(2).flatten(1).sum(1)  # (B*M,) per-image sum
        resid = (xr - x_hat).detach()
        sigma2 = resid.var().clamp_min(1e-8)  # reading 1: per-pixel residual variance
        sigma2_norm = resid.flatten(1).norm(dim=1).var()
        # Step 3 (eq. 15): score of the Gibbs posterior at each particle, SVGD within each image's set.
        score = torch.autograd.grad((-sse / sigma2).sum(), zd, retain_graph=True)[0]
        phi = svgd_direction(z.detach().view(b, m, d), score.view(b, m, d)).reshape(b * m, d)
        enc_surrogate = -(phi * z).sum(1).mean()  # gradient -φ·∂z/∂θ (eq. 16)
        # Steps 5-7: sampler net particles towards the aggregate posterior (readings 4 and 6).
        if self.config.sampler_target == "encoder-kde":
            self._push_codes(z.detach())
        if self.training:
            self.steps_done += 1
        rec = sse.mean()
        terms = {"rec": rec, "sigma2": sigma2.detach(), "sigma2_norm_reading": sigma2_norm.detach(),
                 "phi_enc": phi.norm(dim=1).mean().detach()}
        start = self.config.sampler_start
        if int(self.steps_done) <= start:
            if self.training and int(self.steps_done) == start > 0 and self.config.sampler_components:
                self.seed_sampler()
            return {"loss": rec + enc_surrogate, **terms, "phi_sampler": torch.zeros(()),
                    "kde_scale": self.kde_scale.detach().clone()}
        zs, sets = self._sampler_particles(x)
        if self.config.sampler_target == "encoder-kde":
            rechoose = (int(self.steps_done) - start) % KDE_CV_EVERY == 1
            if self.training and self.config.sampler_kde_bandwidth == "cv" and rechoose:
                self.kde_scale.fill_(cv_bandwidth_scale(self._codes))
            score_s = kde_score(zs.detach(), self._codes, h=self.kde_scale * kde_bandwidth(self._codes))
        else:
            score_s = self._gibbs_mixture_score(zs.detach(), x, sigma2)
        sampler_surrogate, phi_s = amortized_svgd_loss(zs, score_s, sets, self.config.sampler_kernel_scale)
        return {"loss": rec + enc_surrogate + sampler_surrogate, **terms,
                "phi_sampler": phi_s.norm(dim=1).mean().detach(), "kde_scale": self.kde_scale.detach().clone()}

    def _sampler_particles(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The sampler's particles of one step and their number of SVGD sets: with components,
        ``sampler_sets`` distinct k's with ``sampler_particles`` draws each (sets of the same k);
        without, one set of ``sampler_particles`` (or the batch size) draws."""
        cfg = self.config
        if not cfg.sampler_components:
            return self.sampler_codes(cfg.sampler_particles or x.shape[0]).to(x), 1
        k = torch.randperm(cfg.sampler_components)[:cfg.sampler_sets].repeat_interleave(cfg.sampler_particles)
        return self.sampler_codes(len(k), components=k).to(x), cfg.sampler_sets

    @torch.no_grad()
    def seed_sampler(self) -> None:
        """Reading 6: put the K component offsets on K random particles of the code bank, and set
        the sampler net's last layer so its output spread is the KDE's width h (``kde_scale`` x
        Scott's rule over the bank, :func:`kde_bandwidth`; reading 8 chooses the scale here first):
        the sampler starts as a kernel density over K encoder particles and SVGD moves it from there."""
        codes = getattr(self, "_codes", None)
        if codes is None or len(codes) < self.config.sampler_components:
            raise RuntimeError(f"seed_sampler needs >= {self.config.sampler_components} banked encoder codes, "
                               f"have {0 if codes is None else len(codes)}; raise code_bank or sampler_start")
        if self.config.sampler_kde_bandwidth == "cv":
            self.kde_scale.fill_(cv_bandwidth_scale(codes))
        pick = torch.randperm(len(codes))[: self.config.sampler_components].to(codes.device)
        self.sampler_offsets.copy_(codes[pick])
        last = self.sampler_net[-1]
        nn.init.normal_(last.weight, std=float(self.kde_scale * kde_bandwidth(codes)) / last.in_features ** 0.5)
        nn.init.zeros_(last.bias)
        broadcast_(self.sampler_offsets, last.weight, self.kde_scale)  # under torchrun: rank 0's draw on every rank

    monitor_samplers = ("sampler-net",)
    ddp_find_unused = True  # the sampler net has no gradient before sampler_start (explorer.training.DDPLoss)

    def eval_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Held-out terms without side effects: ``rec``, the per-image SSE of D(E(x, ε)) for one
        noise draw per image (the decoder's L_REC), and ``mse``, that of D(encode(x))."""
        with torch.no_grad():
            z = self.encoder(x, torch.randn_like(x))
            return {"rec": (x - self.decode(z)).pow(2).flatten(1).sum(1).mean(),
                    "mse": (x - self.decode(self.encode(x))).pow(2).flatten(1).sum(1).mean()}

    def _push_codes(self, z: torch.Tensor) -> None:
        """Keep the latest ``code_bank`` encoder particles ``(K, d)``, newest first (not saved:
        a resumed run refills it within ``code_bank / (B M)`` steps)."""
        z, _ = gather(z)  # under torchrun: every rank's particles, in rank order (the same bank on all)
        old = getattr(self, "_codes", None)
        bank = z if old is None or old.shape[1] != z.shape[1] else torch.cat([z, old.to(z)])
        self._codes = bank[: self.config.code_bank]

    def _gibbs_mixture_score(self, zs: torch.Tensor, x: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
        """Score of the minibatch aggregate Gibbs posterior (1/B) Σ_b p(z|x_b) (eq. 13) at
        ``zs (n, d)``: Σ_b w_b(z) ∇_z log p(z|x_b), w_b = softmax_b(log p(z|x_b)); through the
        decoder in eval mode (running batch-norm statistics)."""
        zsd = zs.detach().requires_grad_(True)
        with torch.enable_grad(), eval_mode(self.decoder):
            xs = torch.sigmoid(self.decoder(zsd)).flatten(1)  # (n, D)
            xf = x.flatten(1)
            pair_sse = (xs.pow(2).sum(1, keepdim=True) + xf.pow(2).sum(1)[None] - 2 * xs @ xf.T).clamp_min(0)
            log_mix = torch.logsumexp(-pair_sse / sigma2, dim=1)  # (n,), up to -log B
            return torch.autograd.grad(log_mix.sum(), zsd)[0]

    def on_step(self, terms: dict[str, torch.Tensor]) -> None:
        self.gibbs_sigma2.fill_(float(terms["sigma2"]))

    def check_schedule(self, total_steps: int) -> None:
        """Reading 7: the sampler trains from ``sampler_start`` on; a run's guaranteed ``total_steps``
        (its minimum epochs) must leave it :data:`SAMPLER_MIN_STEPS` steps.

        Raises:
            ValueError: too short; names both numbers and the options that fix it.
        """
        start = self.config.sampler_start
        if self.config.sampler_components and total_steps < start + SAMPLER_MIN_STEPS:
            raise ValueError(f"ldc-vae: the run may stop after {total_steps} training steps, but the sampler net "
                             f"starts at step {start} (sampler_start) and needs {SAMPLER_MIN_STEPS} steps after it; "
                             f"raise --epochs or lower --sampler-start")

    def sigma2_estimate(self) -> float | None:
        """The Gibbs posterior's σ² (per pixel) of the latest training step; None before training."""
        v = float(self.gibbs_sigma2)
        return None if v != v else v


KDE_SCALES = (0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5)  # multiples of Scott's h tried
KDE_CV_EVERY = 600  # sampler steps between re-choices of the KDE width (one epoch at batch 100)


@torch.no_grad()
def cv_bandwidth_scale(codes: torch.Tensor, scales=KDE_SCALES) -> float:
    """Reading 8: the multiple of Scott's rule that maximises the held-out likelihood of a KDE.

    The codes ``(K, d)`` are split in two (even and odd rows); for each scale s, a Gaussian KDE
    over the even rows with width s x :func:`kde_bandwidth` (of those rows) scores the mean
    log-density of the odd rows (nats). Returns the best s (a float from ``scales``).

    Raises:
        ValueError: fewer than 4 codes.
    """
    if codes.dim() != 2 or len(codes) < 4:
        raise ValueError(f"cv_bandwidth_scale needs codes (K >= 4, d), got {tuple(codes.shape)}")
    centres, held = codes[0::2].double(), codes[1::2].double()
    k, d = centres.shape
    d2 = torch.cdist(held, centres).pow(2)
    base = float(kde_bandwidth(centres))
    ll = [float((torch.logsumexp(-d2 / (2 * (s * base) ** 2), 1)
                 - d * math.log(s * base) - 0.5 * d * math.log(2 * math.pi) - math.log(k)).mean()) for s in scales]
    return float(scales[max(range(len(scales)), key=ll.__getitem__)])


def kde_bandwidth(codes: torch.Tensor) -> torch.Tensor:
    """Scott's rule for an isotropic Gaussian kernel over ``codes (K, d)``: h = σ̄ K^(-1/(d+4)),
    σ̄ the mean per-dimension standard deviation (units of z)."""
    k, d = codes.shape
    return codes.std(0).mean().clamp_min(1e-6) * k ** (-1.0 / (d + 4))


def kde_score(z: torch.Tensor, codes: torch.Tensor, h: float | torch.Tensor | None = None) -> torch.Tensor:
    """Score ∇_z log q̂(z) of a Gaussian kernel density estimate over ``codes``.

    q̂(z) = (1/K) Σ_k N(z; c_k, h² I), so ∇_z log q̂(z) = (Σ_k w_k c_k - z) / h² with
    w = softmax_k(-||z - c_k||² / (2h²)); computed in closed form (no autograd).

    Args:
        z: points ``(n, d)``; codes: ``(K, d)``, K >= 2.
        h: kernel width in units of z; default Scott's rule h = σ̄ K^(-1/(d+4)), σ̄ the mean
            per-dimension standard deviation of ``codes``.
    Returns:
        ``(n, d)`` scores (units 1/z).
    Raises:
        ValueError: shapes disagree or fewer than 2 codes.
    """
    if z.dim() != 2 or codes.dim() != 2 or z.shape[1] != codes.shape[1] or codes.shape[0] < 2:
        raise ValueError(f"kde_score needs z (n, d) and codes (K >= 2, d), got {tuple(z.shape)} and {tuple(codes.shape)}")
    if h is None:
        h = kde_bandwidth(codes)
    w = torch.softmax(-torch.cdist(z, codes).pow(2) / (2 * h * h), dim=1)  # (n, K)
    return (w @ codes - z) / (h * h)


def particle_flow(model: LDCVAE, x: torch.Tensor, n_particles: int = 64, steps: int = 100, step_size: float = 0.05,
                  seed: int = 0) -> torch.Tensor:
    """SVGD particles from N(0, I) towards one image's Gibbs posterior under the model's decoder.

    Target: log p(z|x) = -||x - D(z)||² / σ² (seed 000 eq. 13), σ² the model's Gibbs σ² from its
    last training step (1.0 if it has none). Steps use :func:`explorer.svgd.svgd_sample` with the
    original SVGD code's AdaGrad step sizes (``step_size`` in units of z), because the score's
    scale (1/σ²) varies by orders of magnitude between models.

    Args:
        x: one image ``(C, H, W)`` or ``(1, C, H, W)`` in [0, 1].
    Returns:
        the trajectory ``(steps + 1, n_particles, d)``, float32 on CPU.
    Raises:
        ValueError: bad image shape, ``n_particles`` < 2, ``steps`` < 0 or ``step_size`` <= 0.
    """
    x = x[None] if x.dim() == 3 else x
    model._check_images(x)
    if n_particles < 2:
        raise ValueError(f"n_particles must be >= 2, got {n_particles}")
    sigma2 = model.sigma2_estimate() or 1.0
    was = model.training
    model.eval()

    def score(z: torch.Tensor) -> torch.Tensor:
        z = z.detach().requires_grad_(True)
        return torch.autograd.grad(model.gibbs_log_posterior(x, model.decode(z), sigma2).sum(), z)[0]

    init = torch.randn(n_particles, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    try:
        _, trajectory = svgd_sample(score, init.to(x), steps, step_size, return_trajectory=True, adagrad=True)
    finally:
        model.train(was)
    return trajectory.detach().float().cpu()
