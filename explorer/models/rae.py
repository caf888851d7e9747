"""Regularized Autoencoders, RAE-L2 and RAE-GP (Ghosh et al., ICLR 2020, "From Variational to
Deterministic Autoencoders", arXiv:1903.12436, §3 and §3.1; the formulas are quoted by name,
L_RAE, L_Z^RAE, L_L2, L_GP, because we could not check the paper's equation numbers).

Objective per image (the L_RAE of §3):

    L_RAE = L_REC + β · L_Z^RAE + λ · L_REG,
    L_REC = ||x - D(E(x))||²          (per-image sum of squared errors on [0, 1] pixels),
    L_Z^RAE = ½ ||z||²,  z = E(x)     (:func:`latent_l2`),
    L_REG = ||θ_D||²                  (RAE-L2, Tikhonov / decoder weight decay, :func:`decoder_weight_l2`)
          | ||∇_z D(E(x))||²_F        (RAE-GP, decoder gradient penalty, :func:`jacobian_sq_norm`).

The training loss is the batch mean of L_REC, β L_Z and (GP) λ L_GP, plus λ ||θ_D||² once per
step (L2: it does not depend on the image).

Hyperparameters, and where they come from. The RAE authors' MNIST configurations (their code,
``configurations/config.py``: RAE-L2 ``embedding_weight`` β = 1e-4, ``gen_reg_weight`` λ = 1e-7;
RAE-GP β = 1e-4, λ = 0.5e-7) weight a *per-pixel mean* squared error on 32 x 32 padded MNIST
(``per_pix_recon_loss``, D_a = 1024), a *per-dimension mean* of z² (``embeddig_loss``) and a Keras
``l2(λ)`` kernel regularizer on the decoder's transposed convolutions. Multiplying their whole
objective by D_a puts it in this project's units (per-image SSE; the padded pixels are zero and
reconstructed exactly), so

- β = 1e-4 · D_a · 2/d = 1e-4 · 1024 · 2/16 = 0.0128 on ½||z||²  (d = 16; the 2/d turns mean z² into ½||z||²);
- RAE-L2: λ = 1e-7 · D_a = 1.024e-4 on ||θ_D||² (sum of squares of the decoder's weight tensors;
  biases and batch-norm scales/shifts are not decayed, as with Keras kernel regularizers);
- RAE-GP: the authors' code penalises the squared gradient of ||D(z)||² (``grad_pen_loss``:
  ``K.gradients(K.square(y_pred), embedding)``), not the paper's ||∇D||², so its weight does not
  convert. We penalise the paper's quantity, the squared Frobenius norm of the decoder Jacobian
  J = ∂D(z)/∂z at z = E(x), with λ = 0.01. ``λ ||J||_F²`` is the second-order term of the
  reconstruction error under latent noise, E||x - D(z + σε)||² ≈ ||x - D(z)||² + σ² ||J||_F²
  (Bishop 1995, "Training with noise is equivalent to Tikhonov regularization"; RAE §3 motivates
  its regularizers as replacements of the VAE's noise injection), so λ = σ² is the variance of an
  equivalent decoder-input noise. Measured on MNIST (600 steps, batch 128): λ = 0.01 gives codes
  of per-dimension variance 2.8, so σ²/var(z) = 3.6e-3, the order of the shipped AR-ELBO Iso-I
  posterior's 1.5e-3 (variance 1.6e-3 on codes of variance 1.06); test SSE 9.4, ||J||_F² 21.
  λ = 1e-3 gave SSE 9.8 and ||J||_F² 44 with codes of variance 1.5 (σ²/var(z) = 7e-4): the
  penalty then hardly acts.

The Jacobian norm is estimated, vectorized over the batch, by Hutchinson's estimator with
``gp_probes`` Rademacher directions v per image, E_v ||J v||² = ||J||_F² (:func:`jacobian_sq_norm`):
J v is the tangent of a forward-mode pass through the decoder, and that pass's primal output is
the reconstruction, so the decoder runs once per step (measured step time at batch 128, one CPU
thread: 0.30 s against RAE-L2's 0.09 s). ``gp_probes = 0`` computes the norm exactly from the
d basis directions (d passes, each updating batch-norm statistics; for checks).
The penalty's gradient reaches both the decoder and the encoder (through z = E(x)), as in the
authors' code. Batch norm runs through :func:`forward_plain_batchnorm` (PyTorch's fused batch
norm has a forward-mode derivative that reverse mode differentiates wrongly in training mode).

Networks: as :mod:`explorer.models.ae` (the ``small`` profile builds the small nets with batch
norm; the RAE authors' MNIST nets have batch norm too).

**Under torchrun (DDP)** nothing changes: every term is a batch mean of per-image terms (the
gradient penalty's probes are drawn per rank).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

from ..losses import squared_error
from .ae import AEConfig, DeterministicAE

REGULARIZERS = ("l2", "gp")
PIXELS_AUTHORS = 1024  # D_a: the RAE authors' MNIST is zero-padded to 32 x 32
RAE_BETA = 1e-4 * PIXELS_AUTHORS * 2 / 16  # = 0.0128, see the module docstring
RAE_LAMBDA = {"l2": 1e-7 * PIXELS_AUTHORS, "gp": 1e-2}


def latent_l2(z: torch.Tensor) -> torch.Tensor:
    """RAE's latent term L_Z^RAE = ½ ||z||² per code (Ghosh et al. 2020, §3): ``(B, d)`` -> ``(B,)``.

    Units: squared latent units, summed over the d dimensions.

    Raises:
        ValueError: ``z`` is not 2-D.
    """
    if z.dim() != 2:
        raise ValueError(f"expected codes of shape (B, d), got {tuple(z.shape)}")
    return 0.5 * z.pow(2).sum(1)


def decoder_weight_l2(decoder: nn.Module) -> torch.Tensor:
    """RAE-L2's L_REG = ||θ_D||² (Ghosh et al. 2020, §3.1, Tikhonov regularization): the sum of
    squares of every weight tensor (parameters with >= 2 dimensions: linear and (transposed)
    convolution kernels) of ``decoder``; biases and batch-norm affine parameters are left out,
    as the authors' Keras ``kernel_regularizer`` does. Returns a scalar (per model, not per image).

    Raises:
        ValueError: ``decoder`` has no weight tensor.
    """
    weights = [p for p in decoder.parameters() if p.dim() >= 2]
    if not weights:
        raise ValueError("decoder has no weight tensors to regularize")
    return sum(w.pow(2).sum() for w in weights)


def forward_plain_batchnorm(net: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """Run ``net`` (an ``nn.Sequential``) on ``h`` with every batch-norm layer in training mode
    computed from plain tensor ops (batch mean, biased batch variance, eps, affine), and its
    running statistics updated as ``nn.BatchNorm`` does (momentum, unbiased running variance).

    Same values as ``net(h)`` up to rounding. Why: the gradient penalty differentiates, in
    reverse mode, a forward-mode derivative (J v), and PyTorch's fused ``batch_norm`` forward-mode
    formula is not differentiable with respect to the parameters before it in training mode
    (measured: the penalty's gradient for the decoder's first linear weight was -0.0081 against
    -0.0131 by finite differences; eval mode and nets without batch norm agree to 1e-8).
    Batch-norm layers in eval mode, and every other layer, run as they are.

    Raises:
        ValueError: ``net`` is not an ``nn.Sequential``.
    """
    if not isinstance(net, nn.Sequential):
        raise ValueError(f"forward_plain_batchnorm needs an nn.Sequential, got {type(net).__name__}")
    for layer in net:
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.training and layer.track_running_stats:
            dims = [0] + list(range(2, h.dim()))
            shape = [1, -1] + [1] * (h.dim() - 2)
            mean = h.mean(dims, keepdim=True)
            var = (h - mean).pow(2).mean(dims, keepdim=True)
            out = (h - mean) * torch.rsqrt(var + layer.eps)
            if layer.affine:
                out = out * layer.weight.view(shape) + layer.bias.view(shape)
            with torch.no_grad():
                n = h.numel() // h.shape[1]
                m_p, v_p = fwAD.unpack_dual(mean).primal.detach(), fwAD.unpack_dual(var).primal.detach()
                layer.num_batches_tracked.add_(1)
                mom = layer.momentum if layer.momentum is not None else 1.0 / float(layer.num_batches_tracked)
                layer.running_mean.mul_(1 - mom).add_(mom * m_p.flatten())
                layer.running_var.mul_(1 - mom).add_(mom * v_p.flatten() * n / max(n - 1, 1))
            h = out
        else:
            h = layer(h)
    return h


def jacobian_sq_norm(fn, z: torch.Tensor, probes: int = 1,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """RAE-GP's L_GP = ||∇_z D(z)||²_F per image (Ghosh et al. 2020, §3.1, gradient penalty): the
    squared Frobenius norm of the Jacobian J_b = ∂fn(z)_b/∂z_b (D x d) of a decoder ``fn``.

    Args:
        fn: the decoder, ``(B, d)`` -> ``(B, ...)`` (e.g. images ``(B, C, H, W)``).
        z: codes ``(B, d)``.
        probes: Hutchinson probes per image: Rademacher v ∈ {±1}^d, E ||J v||² = ||J||_F²
            (unbiased), averaged over the probes; 0 = exact, Σ_k ||J e_k||² over the d basis
            directions.
        generator: random source for the probes.

    Returns:
        ``(fn(z), sq_norm)``: the decoder output and the ``(B,)`` values in (output units /
        latent unit)², both differentiable in reverse mode (a loss can use the output for its
        reconstruction term: no second decoder pass).

    Each J v is the tangent of one forward-mode pass (``torch.autograd.forward_ad``), vectorized
    over the batch; several probes loop over the probes (one pass each). With batch norm in
    training mode, use :func:`forward_plain_batchnorm` inside ``fn``; its J is then the batch
    Jacobian restricted to each image's own code (an image's output also depends on the batch's
    other codes through the batch statistics; those off-diagonal blocks are O(1/B) and left out).

    Raises:
        ValueError: ``z`` is not ``(B, d)`` or ``probes`` < 0.
    """
    if z.dim() != 2:
        raise ValueError(f"expected codes of shape (B, d), got {tuple(z.shape)}")
    if not isinstance(probes, int) or probes < 0:
        raise ValueError(f"probes must be an int >= 0 (0 = exact), got {probes!r}")
    b, d = z.shape
    if probes == 0:
        directions = torch.eye(d, dtype=z.dtype, device=z.device)[:, None, :].expand(d, b, d)
    else:
        directions = (torch.randint(0, 2, (probes, b, d), generator=generator) * 2 - 1).to(z)
    out, total = None, 0.0
    for v in directions:
        with fwAD.dual_level():
            primal, jv = fwAD.unpack_dual(fn(fwAD.make_dual(z, v)))
        out = primal if out is None else out
        total = total + jv.pow(2).flatten(1).sum(1)
    return out, total if probes == 0 else total / probes


@dataclass
class RAEConfig(AEConfig):
    """RAE settings (see the module docstring for the values and their source).

    Attributes:
        regularizer: ``l2`` (decoder weight decay) or ``gp`` (decoder gradient penalty).
        beta: β, the weight of ½||z||²; >= 0. Default 0.0128.
        lam: λ, the weight of L_REG; >= 0. Default (None) per regularizer: 1.024e-4 (l2), 0.01 (gp).
        gp_probes: Hutchinson probes per image for the gradient penalty; 0 = exact. Default 1.

    Raises:
        ValueError: unknown regularizer, negative weights or probes.
    """

    regularizer: str = "l2"
    beta: float = RAE_BETA
    lam: float | None = None
    gp_probes: int = 1

    def __post_init__(self):
        super().__post_init__()
        if self.regularizer not in REGULARIZERS:
            raise ValueError(f"unknown RAE regularizer {self.regularizer!r}; choose one of {list(REGULARIZERS)}")
        if self.lam is None:
            self.lam = RAE_LAMBDA[self.regularizer]
        if not self.beta >= 0 or not self.lam >= 0:
            raise ValueError(f"beta and lam must be >= 0, got beta={self.beta!r}, lam={self.lam!r}")
        if not isinstance(self.gp_probes, int) or self.gp_probes < 0:
            raise ValueError(f"gp_probes must be an int >= 0 (0 = exact), got {self.gp_probes!r}")

    def default_name(self) -> str:
        return f"rae-{self.regularizer}" + ("-2d" if self.latent_dim == 2 else "")


class RAE(DeterministicAE):
    """Regularized autoencoder (Ghosh et al. 2020, §3): RAE-L2 or RAE-GP by ``config.regularizer``.

    ``loss(x)`` on ``x (B, C, H, W)`` returns ``loss`` = ``rec`` + β ``latent`` + λ ``reg`` and
    the unweighted terms: ``rec`` the batch-mean per-image SSE, ``latent`` the batch mean of
    ½||z||², ``reg`` = ||θ_D||² (l2, per model) or the batch mean of ||J||_F² (gp).
    """

    family = "rae"
    config_class = RAEConfig

    def decode_plain_batchnorm(self, z: torch.Tensor) -> torch.Tensor:
        """:meth:`decode` with training-mode batch norm from plain ops (:func:`forward_plain_batchnorm`),
        ``(B, d)`` -> ``(B, C, H, W)`` in [0, 1]; differentiable in forward-over-reverse mode."""
        self._check_latents(z)
        return torch.sigmoid(forward_plain_batchnorm(self.decoder, z))

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.config
        z = self.encode(x)
        if cfg.regularizer == "gp":
            x_hat, jac = jacobian_sq_norm(self.decode_plain_batchnorm, z, probes=cfg.gp_probes)
            reg = jac.mean()
        else:
            x_hat = self.decode(z)
            reg = decoder_weight_l2(self.decoder)
        rec = squared_error(x, x_hat).mean()
        latent = latent_l2(z).mean()
        return {"loss": rec + cfg.beta * latent + cfg.lam * reg, "rec": rec, "latent": latent, "reg": reg}
