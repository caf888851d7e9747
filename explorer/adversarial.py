"""The adversarial trainer for LSR-GAN (seed 004 §2.2): discriminator and generator in tick-tock.

Separate from :mod:`explorer.training` (the VAE-family loop), after pythae's split of
adversarial trainers. Each step draws z ~ p(z) (the base VAE's prior), computes G(z) once,
takes one discriminator step on eq. 3 with G(z) detached, then one generator step on eq. 4
through the updated discriminator. Two Adam optimisers, learning rate ``cfg.lr`` and
β = (0.5, 0.999) (004 App. D: 2e-4, β1 = 0.5).

Resume works as in the VAE loop: after every epoch the model (generator, discriminator; the
frozen base is not part of it), both optimisers, epoch and history are written atomically,
and each epoch's shuffling and noise are seeded from ``(seed, epoch)``.
"""
from __future__ import annotations

import io
import math
import time
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from .checkpoint import atomic_write_bytes
from .training import TrainConfig, TrainingDiverged

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


def _save_resume(path: Path, model, optimizers, epoch: int, history: list[dict]) -> None:
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer_g": optimizers[0].state_dict(),
                "optimizer_d": optimizers[1].state_dict(), "epoch": epoch, "history": history}, buf)
    atomic_write_bytes(path, buf.getvalue())


def train_adversarial(model, images: torch.Tensor, cfg: TrainConfig, device: torch.device | str = "cpu",
                      resume_path: str | Path | None = None, log: Callable[[str], None] = print,
                      progress: bool = True) -> list[dict]:
    """Train an LSR-GAN on ``images (N, C, H, W)`` in [0, 1]; returns the per-epoch history.

    History entries: epoch, the epoch mean of every term of :func:`adversarial_step`,
    images/s and seconds. Same signature and resume behaviour as :func:`explorer.training.train`.

    Raises:
        TrainingDiverged: a non-finite loss, naming the epoch and step; the resume file keeps
            the last good epoch.
    """
    device = torch.device(device)
    torch.set_flush_denormal(True)
    model.to(device).train()
    optimizers = make_optimizers(model, cfg.lr)
    start, history = 0, []
    resume_path = Path(resume_path) if resume_path else None
    if resume_path and resume_path.is_file():
        state = torch.load(resume_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizers[0].load_state_dict(state["optimizer_g"])
        optimizers[1].load_state_dict(state["optimizer_d"])
        start, history = int(state["epoch"]), list(state["history"])
        log(f"resumed from {resume_path} after epoch {start}")
    data, n = images.to(device), len(images)
    steps = math.ceil(n / cfg.batch_size)
    for epoch in range(start, cfg.epochs):
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(n).to(device)
        totals: dict[str, float] = {}
        started = time.perf_counter()
        for step in tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not progress,
                         mininterval=1.0):
            batch = data[order[step * cfg.batch_size:(step + 1) * cfg.batch_size]]
            try:
                terms = adversarial_step(model, optimizers, batch)
            except TrainingDiverged as e:
                where = f"in {resume_path}" if resume_path else "not saved"
                raise TrainingDiverged(f"{e} at epoch {epoch + 1}, step {step + 1}/{steps}; last good state "
                                       f"{where} (epoch {epoch})") from None
            totals = {k: totals.get(k, 0.0) + v for k, v in terms.items()}
        seconds = time.perf_counter() - started
        history.append({"epoch": epoch + 1, **{k: v / steps for k, v in totals.items()},
                        "images_per_s": n / seconds, "seconds": seconds})
        log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in history[-1].items()))
        if resume_path:
            _save_resume(resume_path, model, optimizers, epoch + 1, history)
    model.eval()
    return history
