"""The training loop: in-memory batches, per-epoch monitoring, a convergence rule, resume state.

Plain by design (after nanoGPT): :func:`fit` is the one loop. It takes the family's optimiser
set-up and single step, so the VAE family (:func:`train`: Adam and :func:`train_step`) and
LSR-GAN's adversarial trainer (:mod:`explorer.adversarial`, two optimisers, tick-tock step)
share it (pythae's split: one trainer loop that adversarial training reuses).

**Monitoring.** After each epoch an optional ``monitor(model) -> {name: float}`` runs in eval
mode with its own random state (so it never changes the training run); its values join the
epoch's history entry beside the epoch means of the training terms. The CLI passes
:func:`explorer.evaluate.epoch_monitor`: every loss term on the test split (``test_<term>``)
and family measures such as the sampler net's class entropy.

**Convergence** (:func:`converged`). ``cfg.epochs`` is the minimum. With ``cfg.max_epochs``
set, training goes on past it until the monitored value (``cfg.monitor``, default
``test_loss``) improved by less than ``cfg.tol`` (relative, default 1 %) over the last
``cfg.window`` epochs (default 3), or ``max_epochs`` is reached. :func:`stop_reason` says which.

**Resume.** After every epoch the model, the optimisers, the epoch and the history are written
atomically to ``resume_path`` (``torch.save`` of tensors and plain containers, read back with
``weights_only=True``); :func:`fit` continues from it when it exists. Each epoch's shuffling and
noise are seeded from ``(seed, epoch)``, so a resumed run matches an uninterrupted one.
"""
from __future__ import annotations

import io
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from .io import CheckpointError, atomic_write_bytes


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and step."""


@dataclass
class TrainConfig:
    """Optimisation settings.

    Attributes:
        epochs: minimum number of epochs (the whole run when ``max_epochs`` is None).
        batch_size, lr, seed: as usual; ``limit`` keeps the first N training images (smoke runs).
        max_epochs: None, or train past ``epochs`` until :func:`converged`, at most this many.
        tol: relative improvement of ``monitor`` over ``window`` epochs below which the run has
            converged (0.01 = 1 %).
        window: epochs the improvement is measured over.
        monitor: the history key the rule watches (a value to minimise, e.g. ``test_loss``).
    """

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    limit: int | None = None
    max_epochs: int | None = None
    tol: float = 0.01
    window: int = 3
    monitor: str = "test_loss"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.max_epochs is not None and self.max_epochs < self.epochs:
            raise ValueError(f"max_epochs must be >= epochs ({self.epochs}), got {self.max_epochs}")
        if not 0 <= self.tol < 1:
            raise ValueError(f"tol must be in [0, 1), got {self.tol}")
        if not 0 <= self.seed < 2**32:  # numpy's and scikit-learn's seeds must fit in 32 bits
            raise ValueError(f"seed must be in [0, 2**32), got {self.seed}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")

    def to_dict(self) -> dict:
        return asdict(self)


def improvement(history: Sequence[dict], key: str, window: int) -> float | None:
    """Relative improvement of ``history[-1][key]`` over ``history[-1 - window][key]``:
    ``(old - new) / |old|`` (positive when the value fell). None while fewer than ``window + 1``
    entries carry the key, or when the old value is 0."""
    values = [h[key] for h in history if h.get(key) is not None]
    if len(values) <= window:
        return None
    old, new = values[-1 - window], values[-1]
    return None if old == 0 else (old - new) / abs(old)


def converged(history: Sequence[dict], key: str, tol: float = 0.01, window: int = 3) -> bool:
    """True when ``key`` improved by less than ``tol`` (relative) over the last ``window`` epochs."""
    gain = improvement(history, key, window)
    return gain is not None and gain < tol


def stop_reason(history: Sequence[dict], cfg: TrainConfig) -> str | None:
    """Why a run with ``history`` stops now, or None to go on (see the module docstring)."""
    done = len(history)
    if done < cfg.epochs:
        return None
    if cfg.max_epochs is None:
        return f"ran the {cfg.epochs} epochs asked for"
    gain = improvement(history, cfg.monitor, cfg.window)
    if gain is not None and gain < cfg.tol:
        return (f"converged: {cfg.monitor} improved {100 * gain:.2f} % over the last {cfg.window} epochs "
                f"(< {100 * cfg.tol:g} %) after {done} epochs")
    if done >= cfg.max_epochs:
        shown = "n/a" if gain is None else f"{100 * gain:.2f} %"
        return f"stopped at max_epochs {cfg.max_epochs} before converging ({cfg.monitor} improved {shown})"
    return None


def _as_tuple(optimizers) -> tuple:
    return tuple(optimizers) if isinstance(optimizers, (tuple, list)) else (optimizers,)


def read_resume(path: Path, model, optimizers, cfg: TrainConfig, device: torch.device | str = "cpu") -> list[dict]:
    """Load an interrupted run's state from its resume file into ``model`` and ``optimizers``;
    returns its history (one entry per finished epoch).

    Raises:
        CheckpointError: one line naming the file and what to do: unreadable (zero bytes,
            truncated, not a resume file), saved by a run of another config (e.g. another latent
            size), an epoch count that disagrees with its history, or past this run's epoch limit.
    """
    fix = f"delete {path} to start over, or run without --resume"
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises EOFError, RuntimeError, UnpicklingError, ... here
        detail = str(e).splitlines()[0][:120] if str(e) else "empty"
        raise CheckpointError(f"{path}: unreadable resume file ({type(e).__name__}: {detail}); {fix}") from None
    if not (isinstance(state, dict) and {"model", "optimizers", "epoch", "history"} <= state.keys()
            and isinstance(state["history"], list) and isinstance(state["epoch"], int)):
        raise CheckpointError(f"{path}: not a resume file of this project (keys model, optimizers, epoch, history "
                              f"expected); {fix}")
    try:
        model.load_state_dict(state["model"])
        for opt, sd in zip(_as_tuple(optimizers), state["optimizers"], strict=True):
            opt.load_state_dict(sd)
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: saved by a run with another config ({str(e).splitlines()[0][:160]}); "
                              f"{fix}") from None
    history, epoch, limit = list(state["history"]), state["epoch"], cfg.max_epochs or cfg.epochs
    if epoch != len(history):
        raise CheckpointError(f"{path}: says epoch {epoch} but holds {len(history)} epochs of history; {fix}")
    if epoch > limit:
        raise CheckpointError(f"{path}: the run is after epoch {epoch}, past this run's limit of {limit} epochs "
                              f"(--epochs, --max-epochs); raise the limit, or {fix}")
    return history


def remove_stale_temp_files(*paths: Path) -> list[Path]:
    """Delete the temp files an interrupted atomic write of any of ``paths`` left behind
    (``.<name>.*.tmp`` beside each, :func:`explorer.io.atomic_write_bytes`); returns them."""
    gone = []
    for p in map(Path, paths):
        for tmp in p.parent.glob(f".{p.name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone


def _save_resume(path: Path, model, optimizers, epoch: int, history: list[dict]) -> None:
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizers": [o.state_dict() for o in _as_tuple(optimizers)],
                "epoch": epoch, "history": history}, buf)
    atomic_write_bytes(path, buf.getvalue())


def train_step(model, opt: torch.optim.Optimizer, *batch: torch.Tensor) -> dict[str, float]:
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


def adam(model, lr: float) -> torch.optim.Adam:
    """The VAE family's optimiser: Adam over every parameter, default betas."""
    return torch.optim.Adam(model.parameters(), lr=lr)


@torch.no_grad()
def _run_monitor(monitor, model) -> dict:
    was = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            return {k: float(v) if v is not None else None for k, v in monitor(model).items()}
    finally:
        model.train(was)


def fit(model, data: torch.Tensor | tuple[torch.Tensor, ...], cfg: TrainConfig, *,
        make_optimizers: Callable, step: Callable, device: torch.device | str = "cpu",
        resume_path: str | Path | None = None, log: Callable[[str], None] = print, progress: bool = True,
        monitor: Callable | None = None) -> list[dict]:
    """The training loop shared by every family (see the module docstring).

    Args:
        model: an ``nn.Module``; ``data``: ``(N, ...)`` tensor or a tuple of tensors sharing N
            (each batch is ``step(model, optimizers, *batch)``).
        make_optimizers: ``(model, lr) -> optimiser or tuple of optimisers``.
        step: ``(model, optimizers, *batch) -> {term: float}``; raises TrainingDiverged.
        monitor: ``model -> {name: float}`` after each epoch (eval mode, own random state).

    Returns:
        The history: per epoch, ``epoch``, the epoch mean of every training term, the monitor's
        values, ``images_per_s`` and ``seconds``. ``model.stop_reason`` holds :func:`stop_reason`.

    Raises:
        TrainingDiverged: a non-finite loss; the message names epoch and step, and the resume
            file still holds the last good epoch.
        CheckpointError: an unusable resume file (:func:`read_resume`).
    """
    device = torch.device(device)
    # Collapsed posteriors drive activations into subnormal floats, which are 10x slower on
    # x86 CPUs (measured: the beta-VAE fell from 900 to 120 images/s). Flush them to zero.
    torch.set_flush_denormal(True)
    model.to(device).train()
    optimizers = make_optimizers(model, cfg.lr)
    history: list[dict] = []
    resume_path = Path(resume_path) if resume_path else None
    if resume_path and resume_path.is_file():
        history = read_resume(resume_path, model, optimizers, cfg, device)
        log(f"resumed from {resume_path} after epoch {len(history)}")
    data = tuple(t.to(device) for t in (data if isinstance(data, tuple) else (data,)))
    n = len(data[0])
    steps = math.ceil(n / cfg.batch_size)
    limit = cfg.max_epochs or cfg.epochs
    while (reason := stop_reason(history, cfg)) is None:
        epoch = len(history)
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        perm = torch.randperm(n, device="cpu").to(device)
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{limit}", leave=False, disable=not progress,
                   mininterval=1.0)
        for i in bar:
            idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            try:
                terms = step(model, optimizers, *(t[idx] for t in data))
            except TrainingDiverged as e:
                raise TrainingDiverged(f"{e} at epoch {epoch + 1}, step {i + 1}/{steps}; last good state "
                                       f"{'in ' + str(resume_path) if resume_path else 'not saved'} "
                                       f"(epoch {epoch})") from None
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            if i % 50 == 0:
                bar.set_postfix(loss=f"{terms['loss']:.2f}")
        secs = time.perf_counter() - t0
        entry = {"epoch": epoch + 1, **{k: v / steps for k, v in sums.items()}}
        if monitor is not None:
            entry.update(_run_monitor(monitor, model))
        entry.update(images_per_s=n / secs, seconds=secs)
        history.append(entry)
        log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))
        if resume_path:
            _save_resume(resume_path, model, optimizers, epoch + 1, history)
    log(reason)
    model.stop_reason = reason
    model.eval()
    return history


def train(model, images: torch.Tensor | tuple[torch.Tensor, ...], cfg: TrainConfig, device: torch.device | str = "cpu",
          resume_path: str | Path | None = None, log: Callable[[str], None] = print,
          progress: bool = True, monitor: Callable | None = None) -> list[dict]:
    """Train a model with a ``loss`` (VAE family, baselines, the FID classifier) by Adam on
    ``images (N, C, H, W)`` in [0, 1] (or a tuple such as ``(images, labels)``): :func:`fit`
    with :func:`adam` and :func:`train_step`. Returns the per-epoch history.

    Raises:
        TrainingDiverged: see :func:`fit`.
    """
    return fit(model, images, cfg, make_optimizers=adam, step=train_step, device=device,
               resume_path=resume_path, log=log, progress=progress, monitor=monitor)
