"""The training loop for the VAE family: Adam, in-memory batches, per-epoch resume state.

Plain by design (after nanoGPT): one function, :func:`train`, that a CLI calls. Adversarial
models get their own trainer in a later module; this loop stays untouched.

Resume: after every epoch the model, optimiser, epoch and history are written atomically to
``resume_path`` (``torch.save`` of tensors and plain containers, read back with
``weights_only=True``). ``train(..., resume_path=p)`` continues from it when it exists. Each
epoch's shuffling and noise are seeded from ``(seed, epoch)``, so a resumed run matches an
uninterrupted one.
"""
from __future__ import annotations

import io
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from .checkpoint import atomic_write_bytes
from .models import LatentModel


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and step."""


@dataclass
class TrainConfig:
    """Optimisation settings. ``limit`` keeps the first N training images (smoke runs)."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    limit: int | None = None

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda when available else cpu. Raises ValueError for cuda without a GPU or a bad name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


def _save_resume(path: Path, model, opt, epoch: int, history: list[dict]) -> None:
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "history": history}, buf)
    atomic_write_bytes(path, buf.getvalue())


def train_step(model: LatentModel, opt: torch.optim.Optimizer, *batch: torch.Tensor) -> dict[str, float]:
    """One optimiser step on a batch (``x``, or ``x, y`` for a supervised model such as the FID
    classifier): ``model.loss(*batch)``; returns the loss terms as floats.

    Raises:
        TrainingDiverged: non-finite loss (no update is applied).
    """
    terms = model.loss(*batch)
    loss = terms["loss"]
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"non-finite loss {loss.item()}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    model.on_step(terms)
    return {k: float(v.detach()) for k, v in terms.items() if not k.startswith("_")}


def train(model: LatentModel, images: torch.Tensor | tuple[torch.Tensor, ...], cfg: TrainConfig, device: torch.device | str = "cpu",
          resume_path: str | Path | None = None, log: Callable[[str], None] = print,
          progress: bool = True) -> list[dict]:
    """Train ``model`` on ``images (N, C, H, W)`` in [0, 1]; returns the per-epoch history.

    ``images`` may also be a tuple of tensors sharing N, such as ``(images, labels)``: each batch
    is then ``model.loss(x, y)``.

    Each history entry holds the epoch, the mean of every loss term over the epoch (``loss``,
    ``rec``, ``kl``, extras such as ``drift_kl`` and ``sigma2``), images/s and seconds.

    Raises:
        TrainingDiverged: a non-finite loss; the message names epoch and step, and the resume
            file still holds the last good epoch.
    """
    device = torch.device(device)
    # Collapsed posteriors drive activations into subnormal floats, which are 10x slower on
    # x86 CPUs (measured: the beta-VAE fell from 900 to 120 images/s). Flush them to zero.
    torch.set_flush_denormal(True)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start, history = 0, []
    resume_path = Path(resume_path) if resume_path else None
    if resume_path and resume_path.is_file():
        state = torch.load(resume_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history = int(state["epoch"]), list(state["history"])
        log(f"resumed from {resume_path} after epoch {start}")
    data = tuple(t.to(device) for t in (images if isinstance(images, tuple) else (images,)))
    n = len(data[0])
    steps = math.ceil(n / cfg.batch_size)
    for epoch in range(start, cfg.epochs):
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        perm = torch.randperm(n, device="cpu").to(device)
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not progress,
                   mininterval=1.0)
        for step in bar:
            idx = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            try:
                terms = train_step(model, opt, *(t[idx] for t in data))
            except TrainingDiverged as e:
                raise TrainingDiverged(f"{e} at epoch {epoch + 1}, step {step + 1}/{steps}; last good state "
                                       f"{'in ' + str(resume_path) if resume_path else 'not saved'} "
                                       f"(epoch {epoch})") from None
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            if step % 50 == 0:
                bar.set_postfix(loss=f"{terms['loss']:.2f}")
        secs = time.perf_counter() - t0
        entry = {"epoch": epoch + 1, **{k: v / steps for k, v in sums.items()}, "images_per_s": n / secs,
                 "seconds": secs}
        history.append(entry)
        log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))
        if resume_path:
            _save_resume(resume_path, model, opt, epoch + 1, history)
    model.eval()
    return history
