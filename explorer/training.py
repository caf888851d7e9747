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

import contextlib
import io
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from . import distributed
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


def _load_resume_state(path: Path, device) -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises EOFError, RuntimeError, UnpicklingError, ... here
        detail = str(e).splitlines()[0][:120] if str(e) else "empty"
        raise CheckpointError(f"{path}: unreadable resume file ({type(e).__name__}: {detail}); "
                              f"{_resume_fix(path)}") from None


def _resume_fix(path: Path) -> str:
    return f"delete {path} to start over, or run without --resume"


def read_resume(path: Path, model, optimizers, cfg: TrainConfig, device: torch.device | str = "cpu",
                state: dict | None = None) -> list[dict]:
    """Load an interrupted run's state from its resume file into ``model`` and ``optimizers``;
    returns its history (one entry per finished epoch). ``state``, when given, is the file's
    content already read (under torchrun rank 0 reads the file and sends it to the others).

    Raises:
        CheckpointError: one line naming the file and what to do: unreadable (zero bytes,
            truncated, not a resume file), saved by a run of another config (e.g. another latent
            size), an epoch count that disagrees with its history, or past this run's epoch limit.
    """
    fix = _resume_fix(path)
    if state is None:
        state = _load_resume_state(path, device)
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


def _shared_resume(path: Path | None, device) -> dict | None:
    """The resume file's content on every rank: rank 0 reads it (the only rank that writes it,
    so other nodes need no shared disk) and broadcasts it, or broadcasts the error it raised."""
    if distributed.rank() == 0:
        try:
            found = ("state", _load_resume_state(path, "cpu")) if path and path.is_file() else ("none", None)
        except CheckpointError as e:
            found = ("error", str(e))
    else:
        found = None
    kind, value = distributed.broadcast_object(found)
    if kind == "error":
        raise CheckpointError(value)
    if kind == "none":
        return None
    return {**value, "model": {k: v.to(device) for k, v in value["model"].items()}}


class _LossForward(nn.Module):
    """``forward(*batch) = model.loss(*batch)``: what DistributedDataParallel wraps, so the loss
    runs inside DDP's forward and the backward all-reduces the gradients."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *batch):
        return self.model.loss(*batch)


class DDPLoss:
    """A model whose ``loss`` runs through DistributedDataParallel (the VAE family's
    ``distribute``); every other attribute is the model's, so :func:`train_step` is unchanged.
    ``model.ddp_find_unused`` (default False) is passed on as ``find_unused_parameters``: True
    for a model with parameters that some steps leave without a gradient (LDC-VAE's sampler
    net before ``sampler_start``)."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.model = model
        ids = [device.index] if device.type == "cuda" else None
        self.ddp = DistributedDataParallel(_LossForward(model), device_ids=ids,
                                           find_unused_parameters=getattr(model, "ddp_find_unused", False))

    def loss(self, *batch):
        return self.ddp(*batch)

    def __getattr__(self, name):
        return getattr(self.model, name)

    @contextlib.contextmanager
    def active(self):
        yield self


class DDPModules:
    """A model whose named submodules run wrapped in DistributedDataParallel while :meth:`active`
    (LSR-GAN: the generator ``decoder`` and the ``discriminator``, each with its own gradient
    all-reduce). The wrappers are swapped in for the step only, so the model's state dict
    keeps its own keys."""

    def __init__(self, model: nn.Module, names: tuple[str, ...], device: torch.device):
        self.model, self.names = model, names
        ids = [device.index] if device.type == "cuda" else None
        self.wrapped = {n: DistributedDataParallel(getattr(model, n), device_ids=ids) for n in names}

    def __getattr__(self, name):
        return getattr(self.model, name)

    @contextlib.contextmanager
    def active(self):
        plain = {n: getattr(self.model, n) for n in self.names}
        try:
            for n, w in self.wrapped.items():
                setattr(self.model, n, w)
            yield self.model
        finally:
            for n, m in plain.items():
                setattr(self.model, n, m)


ddp_loss = DDPLoss  # the VAE family's ``distribute``: the whole loss under one DDP


def ddp_modules(*names: str) -> Callable:
    """A ``distribute`` that wraps the submodules ``names`` separately (:class:`DDPModules`)."""
    return lambda model, device: DDPModules(model, names, device)


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


def epoch_indices(n: int, cfg: TrainConfig, epoch: int, rank: int = 0, world: int = 1) -> torch.Tensor:
    """The training-image indices this rank visits in ``epoch``, in order: the permutation of
    ``range(n)`` seeded by ``(cfg.seed, epoch)`` (:class:`DistributedSampler`, whose shuffle is
    ``torch.randperm`` under ``seed + epoch``), strided over the ranks. With a local batch of
    ``cfg.batch_size // world``, the i-th batches of all ranks together are exactly the i-th
    global batch of a one-rank run. When ``world`` does not divide ``n``, the sampler repeats
    the first ``world - n % world`` indices of the permutation to even the ranks out."""
    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True,
                                 seed=cfg.seed * 100_003, drop_last=False)
    sampler.set_epoch(epoch)
    return torch.tensor(list(iter(sampler)), dtype=torch.long)


def check_world(cfg: TrainConfig, world: int) -> None:
    """Raises ValueError unless the global batch splits evenly over ``world`` ranks."""
    if cfg.batch_size % world:
        raise ValueError(f"--batch-size {cfg.batch_size} (the global batch) must be a multiple of the "
                         f"{world} ranks torchrun started")


def _mean_over_ranks(sums: dict[str, float], steps: int) -> dict[str, float]:
    """Every rank's epoch sums of the step terms, averaged over steps and ranks (the same keys on every rank)."""
    world = distributed.world_size()
    if world == 1:
        return {k: v / steps for k, v in sums.items()}
    keys = sorted(sums)
    total = distributed.global_sum(torch.tensor([sums[k] for k in keys], dtype=torch.float64))
    return {k: float(v) / (steps * world) for k, v in zip(keys, total)}


def fit(model, data: torch.Tensor | tuple[torch.Tensor, ...], cfg: TrainConfig, *,
        make_optimizers: Callable, step: Callable, device: torch.device | str = "cpu",
        resume_path: str | Path | None = None, log: Callable[[str], None] = print, progress: bool = True,
        monitor: Callable | None = None, distribute: Callable = ddp_loss) -> list[dict]:
    """The training loop shared by every family (see the module docstring).

    Args:
        model: an ``nn.Module``; ``data``: ``(N, ...)`` tensor or a tuple of tensors sharing N
            (each batch is ``step(model, optimizers, *batch)``).
        make_optimizers: ``(model, lr) -> optimiser or tuple of optimisers``.
        step: ``(model, optimizers, *batch) -> {term: float}``; raises TrainingDiverged.
        monitor: ``model -> {name: float}`` after each epoch (eval mode, own random state).
        distribute: under torchrun, ``(model, device) -> handle`` whose ``active()`` context
            yields what ``step`` gets in place of the model (:func:`ddp_loss` for a family trained
            through ``model.loss``, :func:`ddp_modules` for one with several networks).

    **Under torchrun** (more than one rank): each rank takes its share of every global batch of
    ``cfg.batch_size`` (:func:`epoch_indices`), draws its own noise from
    :func:`explorer.distributed.rank_seed`, and the gradients are averaged over ranks by
    DistributedDataParallel, so a step is a step on the global batch. The history's terms are
    averaged over ranks; the monitor runs on rank 0 and its values are sent to the others (so
    every rank takes the same decision to stop); only rank 0 writes the resume file. Batch norm
    normalises with each rank's local batch (DDP's default; SyncBatchNorm needs CUDA), and DDP
    sends rank 0's running statistics to the others at every forward and once more at the end.

    Returns:
        The history: per epoch, ``epoch``, the epoch mean of every training term, the monitor's
        values, ``images_per_s`` and ``seconds``. ``model.stop_reason`` holds :func:`stop_reason`.

    Raises:
        TrainingDiverged: a non-finite loss; the message names epoch and step, and the resume
            file still holds the last good epoch.
        CheckpointError: an unusable resume file (:func:`read_resume`).
        ValueError: a global batch that does not split over the ranks (:func:`check_world`).
    """
    device = torch.device(device)
    rank, world = distributed.rank(), distributed.world_size()
    check_world(cfg, world)
    main = rank == 0
    log = log if main else (lambda s: None)
    # Collapsed posteriors drive activations into subnormal floats, which are 10x slower on
    # x86 CPUs (measured: the beta-VAE fell from 900 to 120 images/s). Flush them to zero.
    torch.set_flush_denormal(True)
    model.to(device).train()
    optimizers = make_optimizers(model, cfg.lr)
    history: list[dict] = []
    resume_path = Path(resume_path) if resume_path else None
    if world > 1:
        state = _shared_resume(resume_path, device)
        if state is not None:
            history = read_resume(resume_path, model, optimizers, cfg, device, state=state)
    elif resume_path and resume_path.is_file():
        history = read_resume(resume_path, model, optimizers, cfg, device)
    if history:
        log(f"resumed from {resume_path} after epoch {len(history)}")
    handle = distribute(model, device) if world > 1 else None
    data = tuple(t.to(device) for t in (data if isinstance(data, tuple) else (data,)))
    n = len(data[0])
    local_batch = cfg.batch_size // world
    limit = cfg.max_epochs or cfg.epochs
    while (reason := stop_reason(history, cfg)) is None:
        epoch = len(history)
        if world == 1:
            torch.manual_seed(cfg.seed * 100_003 + epoch)
            perm = torch.randperm(n, device="cpu").to(device)
        else:
            perm = epoch_indices(n, cfg, epoch, rank, world).to(device)
            torch.manual_seed(distributed.rank_seed(cfg.seed, rank) * 100_003 + epoch)
        steps = math.ceil(len(perm) / local_batch)
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{limit}", leave=False, disable=not (progress and main),
                   mininterval=1.0)
        for i in bar:
            idx = perm[i * local_batch:(i + 1) * local_batch]
            try:
                if handle is None:
                    terms = step(model, optimizers, *(t[idx] for t in data))
                else:
                    with handle.active() as stepped:
                        terms = step(stepped, optimizers, *(t[idx] for t in data))
            except TrainingDiverged as e:
                raise TrainingDiverged(f"{e} at epoch {epoch + 1}, step {i + 1}/{steps}; last good state "
                                       f"{'in ' + str(resume_path) if resume_path else 'not saved'} "
                                       f"(epoch {epoch})") from None
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            if i % 50 == 0:
                bar.set_postfix(loss=f"{terms['loss']:.2f}")
        secs = time.perf_counter() - t0
        entry = {"epoch": epoch + 1, **_mean_over_ranks(sums, steps)}
        if monitor is not None:
            measured = _run_monitor(monitor, model) if main else None
            entry.update(distributed.broadcast_object(measured))
        entry.update(images_per_s=n / secs, seconds=secs)
        history.append(entry)
        log(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))
        if resume_path and main:
            _save_resume(resume_path, model, optimizers, epoch + 1, history)
        distributed.barrier()
    if world > 1:  # batch-norm statistics of the last local forward differ per rank: keep rank 0's everywhere
        distributed.broadcast_(*model.buffers())
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
