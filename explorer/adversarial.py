"""The adversarial trainer for LSR-GAN (seed 004 §2.2): discriminator and generator in tick-tock.

Separate from :mod:`explorer.training` (the VAE-family loop), after pythae's split of
adversarial trainers. Each step draws z ~ p(z) (the base VAE's prior), computes G(z) once,
takes one discriminator step on eq. 3 with G(z) detached, then one generator step on eq. 4
through the updated discriminator. Two Adam optimisers, learning rate ``cfg.lr`` and
β = (0.5, 0.999) (004 App. D: 2e-4, β1 = 0.5).

The loop itself is :func:`explorer.training.fit`, shared with the VAE family: resume (the model
is the generator and discriminator; the frozen base is not part of it; both optimisers are
saved), per-epoch seeds, monitoring and the convergence rule.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from .training import TrainConfig, TrainingDiverged, ddp_modules, fit

BETAS = (0.5, 0.999)  # 004 App. D


def make_optimizers(model, lr: float) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """``(generator optimiser, discriminator optimiser)``: Adam over ``model.decoder`` and
    ``model.discriminator`` respectively, β = (0.5, 0.999)."""
    return (torch.optim.Adam(model.decoder.parameters(), lr=lr, betas=BETAS),
            torch.optim.Adam(model.discriminator.parameters(), lr=lr, betas=BETAS))


def _descend(opt: torch.optim.Optimizer, terms: dict, key: str) -> dict:
    """One optimiser step on ``terms[key]``; raises TrainingDiverged (no update) when it is not finite."""
    if not torch.isfinite(terms[key]):
        raise TrainingDiverged(f"non-finite {key} {terms[key].item()}")
    opt.zero_grad(set_to_none=True)
    terms[key].backward()
    opt.step()
    return terms


def discriminator_step(model, opt_d: torch.optim.Optimizer, x: torch.Tensor, fake: torch.Tensor) -> dict:
    """One step on eq. 3 for real ``x`` and generated ``fake`` ``(B, C, H, W)``; only the
    discriminator moves (``fake`` is detached). Returns the terms as tensors.

    Raises:
        TrainingDiverged: non-finite loss (no update is applied).
    """
    return _descend(opt_d, model.discriminator_loss(x, fake), "d_loss")


def generator_step(model, opt_g: torch.optim.Optimizer, z: torch.Tensor, fake: torch.Tensor) -> dict:
    """One step on eq. 4 for codes ``z (B, d)`` and ``fake = G(z)``; only the generator moves
    (the discriminator's gradients are left for its next ``zero_grad``; the base is frozen).

    Raises:
        TrainingDiverged: non-finite loss (no update is applied).
    """
    return _descend(opt_g, model.generator_loss(z, fake), "g_loss")


def adversarial_step(model, optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
                     x: torch.Tensor) -> dict[str, float]:
    """One discriminator step then one generator step on real images ``x (B, C, H, W)``, with
    z ~ p(z) = N(0, I) and G(z) computed once.

    Returns the terms as floats: ``d_loss``, ``d_real``, ``d_fake``, ``g_loss``, ``g_adv``,
    ``latent_nll`` (see :class:`explorer.models.lsr_gan.LSRGAN`) and ``loss`` (= ``g_loss``).

    Raises:
        TrainingDiverged: a non-finite loss; the step that saw it applies no update.
    """
    opt_g, opt_d = optimizers
    z = torch.randn(x.shape[0], model.latent_dim, device=x.device, dtype=x.dtype)
    fake = model.decode(z)
    terms = {**discriminator_step(model, opt_d, x, fake), **generator_step(model, opt_g, z, fake)}
    terms["loss"] = terms["g_loss"]
    return {k: float(v.detach()) for k, v in terms.items()}


def train_adversarial(model, images: torch.Tensor, cfg: TrainConfig, device: torch.device | str = "cpu",
                      resume_path: str | Path | None = None, log: Callable[[str], None] = print,
                      progress: bool = True, monitor: Callable | None = None) -> list[dict]:
    """Train an LSR-GAN on ``images (N, C, H, W)`` in [0, 1]; returns the per-epoch history.

    :func:`explorer.training.fit` with :func:`make_optimizers` and :func:`adversarial_step`:
    history entries hold the epoch, the epoch mean of every term of :func:`adversarial_step`,
    the monitor's values, images/s and seconds; resume and the convergence rule as there.

    Under torchrun the generator (``model.decoder``) and the discriminator are each wrapped in
    DistributedDataParallel (:func:`explorer.training.ddp_modules`): each rank draws its own z
    for its share of the batch, and each optimiser steps on gradients averaged over ranks.

    Raises:
        TrainingDiverged: a non-finite loss, naming the epoch and step; the resume file keeps
            the last good epoch.
    """
    return fit(model, images, cfg, make_optimizers=make_optimizers, step=adversarial_step, device=device,
               resume_path=resume_path, log=log, progress=progress, monitor=monitor,
               distribute=ddp_modules("decoder", "discriminator"))
