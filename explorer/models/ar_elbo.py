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

**Dequantized training data** (``dequantize``, default True). Trained on 8-bit images as they
are, Diag-I and Diag-D collapse with the small nets (measured, MNIST, 20k images, 4 epochs:
KL -> 0, no active units, test MSE 79.8, every image decoded to near black). The cause: at the
88 pixels that are black in every training image the MLE σᵢ² falls to ε (log10 σᵢ² = -6.00),
where the objective rewards pushing the decoder's output towards 0 without end; a conv decoder
has no per-pixel bias, so its shared weights push every pixel's logit down, and after the first
epoch 96-98 % of the other pixels decode below 1e-3. With nothing decoded the encoder carries
no signal, and the KL term closes the posterior. ε = 1e-3 (0.85-0.89 dead) did not help. The
continuous Gaussian likelihood of discrete data is degenerate at such pixels (Theis, van den
Oord & Bethge 2016, §3.1); uniform dequantization (:func:`explorer.losses.dequantize`) bounds it:
the optimal output at black pixels becomes 1/512 (measured 1.95e-3), σᵢ² stays at 2.3e-6, and
the same Diag-I run trains (16 active units, test MSE 14.7 after 4 epochs). It applies in
training only, to all four parameterizations alike; evaluation uses the images as they are.
(The App. J.1 architecture, ``--profile paper``, whose batch norm keeps the decoder alive,
trains Diag-I without it; the small profile needs it.)

**Diag-D's σᵢ²(z) given z** (:func:`explorer.losses.conditional_sigma2`). Eq. 51 sets σᵢ²(z) to the
squared error of the one image the code came from: a variance estimated from a single
observation, whose likelihood grows without bound as that one error goes to 0. Its objective,
½ Σᵢ log((xᵢ - μᵢ)² + ε), is minimised per pixel by the pixel's *mode*, so with an uninformative
encoder the decoder draws the all-black mode and never uses z (measured, MNIST, 20k images: with
dequantization, KL warm-up over 600 steps, lr 3e-4, batch norm in the decoder, ε = 1e-4, 1e-3 or
1e-2, or ε annealed from 0.1 to 1e-6: test MSE 78-80 and no active units in every run; the
paper-profile net without dequantization also collapsed in its first epoch). We read σᵢ²(z) as
what its name says, the variance of xᵢ *given z*, estimated on the minibatch with weights
q(z | x_b') over the images that could have produced z. It reduces to eq. 51 once posteriors are
sharp and to the batch variance (Diag-I) while they are not, so training starts as Diag-I does
and ends as Diag-D. Same run: 16 active units from the second epoch.

**Diag-D reading 2: the variance is estimated without the image it weighs** (``diag_d_variance =
"leave-one-out"``; checkpoints saved before it read as ``"in-sample"``). Reading 1 keeps
image b in its own estimate, so once posteriors sharpen σ̂ᵢ²(z_b) -> (x_b,i - μᵢ(z_b))² + ε and the
step weighs each pixel's error by 1/σ̂ᵢ², i.e. by the inverse of that same error: the pixels already
nearly right dominate, and the mean drifts to the per-pixel mode again, more slowly (the MNIST
reading-1 file: test MSE 27.6 after 30 epochs, stalled from epoch 12, decoded means jagged, almost
binary strokes). Dropping b' = b from the weights (:func:`explorer.losses.conditional_sigma2`) is the
standard cure for an estimate that sees the point it scores (leave-one-out, as in a cross-validated
likelihood); with sharp posteriors it is the error of the nearest other code's image, the local
variance of the data around z. Measured, MNIST, first 20k images, 4 epochs, batch 64: test MSE 28.7
(reading 2) against 52.5 (reading 1) (`python train.py --model ar-elbo-diag-d --dataset mnist --epochs
4 --limit 20000`). The training loss it records is image b's NLL under a variance that did not see
it, a held-out figure, so it is large and positive where reading 1's in-sample NLL is negative.
The full MNIST run stalled at test MSE 11.09 (36 epochs), 1.7x Diag-I's: with sharp posteriors the
estimate is one other image's error, a noisy σ̂ᵢ² whose inverse weighs each pixel at random.

**Diag-D reading 3: eq. 51's one-image MLE pooled with Diag-I's** (``diag_d_variance = "pooled"``, the
default; :func:`explorer.losses.ar_elbo_reconstruction`). Eq. 51 is a variance estimated from a single
observation; the textbook remedy is to pool it with what the other observations say about the same
pixel, here eq. 47's batch MLE σ̄ᵢ² (Diag-I), each counted once:
σ̂ᵢ²(z_b) = ½ (σ̄ᵢ² + (x_b,i - μᵢ(z_b))²) + ε, the posterior mean of σᵢ²(z_b) given its one error under
an inverse-gamma prior of shape 3/2 centred on σ̄ᵢ². It stays z-dependent (a pixel the decoder gets
wrong for this z gets a larger variance, and a smaller weight, than for another z), never falls below
half the pixel's Diag-I variance, so no pixel's likelihood grows without bound, and needs no
posterior. Its gradient is twice that of Table 2's Diag-D objective ½ Σᵢ ln((xᵢ - μᵢ)² + εᵢ) with the
stabilising constant εᵢ set per pixel to σ̄ᵢ² where §4.2 suggests 1e-6 for all. Measured, MNIST,
first 20k images, 4 epochs, batch 64: test MSE 17.3 (Diag-I in the same run: 15.8; reading 2: 28.7);
the full runs are in docs/model-quality.md.

``model.sigma2`` holds the MLE from the latest training batch (a scalar for Iso-*, per pixel
``(C, H, W)`` for Diag-*, averaged over the batch for the z-dependent variants).

**Under torchrun (DDP)** every batch statistic is the global batch's: Iso-I's and Diag-I's MLE
all-reduce their sums and then divide (:func:`explorer.losses.sigma2_mle`; Diag-D reading 3 pools with
that global Diag-I MLE), Diag-D's readings 1-2 weigh the images of every rank
(:func:`explorer.losses.conditional_sigma2`), and ``sigma2`` averages over
all ranks, so a 2-rank run takes the steps a one-process run takes (tests/test_distributed.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..distributed import global_mean
from ..losses import VARIANCES, ar_elbo_reconstruction, dequantize, kl_std_normal
from .base import LatentModel, ModelConfig


DIAG_D_VARIANCES = ("pooled", "leave-one-out", "in-sample")  # how Diag-D estimates σᵢ²(z) (readings 3 / 2 / 1)


@dataclass
class ARELBOConfig(ModelConfig):
    """variance: one of ``iso-i``, ``iso-d``, ``diag-i``, ``diag-d`` (seed 002 Table 2);
    dequantize: train on uniformly dequantized pixels (see the module docstring);
    diag_d_variance: Diag-D only, the estimate of σᵢ²(z): ``pooled`` (reading 3, the default),
    ``leave-one-out`` (reading 2) or ``in-sample`` (reading 1) (see the module docstring)."""

    variance: str = "iso-i"
    dequantize: bool = True
    diag_d_variance: str = "pooled"

    def __post_init__(self):
        super().__post_init__()
        if self.variance not in VARIANCES:
            raise ValueError(f"unknown variance parameterization {self.variance!r}; choose one of {list(VARIANCES)}")
        if self.diag_d_variance not in DIAG_D_VARIANCES:
            raise ValueError(f"unknown diag_d_variance {self.diag_d_variance!r}; choose one of {list(DIAG_D_VARIANCES)}")

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

    @classmethod
    def upgrade_config(cls, d: dict) -> dict:
        """Checkpoints saved before Diag-D reading 2 (no ``diag_d_variance``) were trained in-sample."""
        return {"diag_d_variance": "in-sample", **d}

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.training and self.config.dequantize:
            x = dequantize(x)
        mu, logvar = self.posterior(x)
        z = self.reparameterize(mu, logvar)
        x_hat = self.decode(z)
        rec, s2 = ar_elbo_reconstruction(x, x_hat, self.config.variance, posterior=(z, mu, logvar),
                                         leave_one_out=self.config.diag_d_variance == "leave-one-out",
                                         pooled=self.config.diag_d_variance == "pooled")
        kl = kl_std_normal(mu, logvar).mean()
        s2 = global_mean(s2.reshape(-1, *self.sigma2.shape)) if s2.dim() > self.sigma2.dim() else s2
        return {"loss": rec + kl, "rec": rec, "kl": kl, "sigma2": s2.mean(), "_sigma2_full": s2}

    def on_step(self, terms: dict[str, torch.Tensor]) -> None:
        self.sigma2.copy_(terms["_sigma2_full"])

    def sigma2_estimate(self) -> float:
        return float(self.sigma2.mean())
