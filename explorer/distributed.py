"""Running under ``torchrun``: the process group, who this rank is, and the few collectives the
library needs (no other project imports).

``torchrun --nproc_per_node N train.py ...`` starts N copies of a script with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables set; :func:`init` reads them and
joins the process group (gloo on CPU, nccl on CUDA, chosen from the device). A plain
``python train.py`` sets none of them, and then every function here is the identity of a
one-rank world: :func:`global_sum` returns its input, :func:`gather` its input, and so on, so
the single-process code path is unchanged.

Everything here is a thin wrapper over :mod:`torch.distributed`; the launcher is torchrun's.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` in ``0..world_size-1``, ``local_rank`` on its node,
    and the backend (None for a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


SINGLE = DistContext()


def env_context(environ=None) -> DistContext:
    """The rank, world size and local rank that torchrun put in the environment; :data:`SINGLE`
    when ``WORLD_SIZE`` is unset.

    Raises:
        ValueError: torchrun variables that are not integers, or a rank outside the world.
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return SINGLE
    try:
        rank, world, local = (int(env.get(k, "0")) for k in TORCHRUN_VARS)
    except ValueError:
        shown = ", ".join(f"{k}={env.get(k)!r}" for k in TORCHRUN_VARS)
        raise ValueError(f"torchrun variables must be integers, got {shown}") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(f"RANK={rank} must be in 0..WORLD_SIZE-1 with WORLD_SIZE={world} >= 1 and LOCAL_RANK={local} >= 0")
    return DistContext(rank=rank, world_size=world, local_rank=local)


def launch_command(target: str) -> str:
    """How this process was started, for provenance: ``torchrun --nproc_per_node N TARGET`` under
    torchrun, ``python TARGET`` otherwise (``TARGET`` is ``train.py`` or ``-m explorer.evaluate``).
    Bad torchrun variables read as a plain run here; :func:`init` reports them."""
    try:
        world = env_context().world_size
    except ValueError:
        world = 1
    return f"torchrun --nproc_per_node {world} {target}" if world > 1 else f"python {target}"


def backend_for(device: torch.device) -> str:
    """nccl for CUDA devices, gloo otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join torchrun's process group when the environment says so.

    Args:
        device: the device the run asked for (``cpu`` or ``cuda``); under torchrun a CUDA run
            uses ``cuda:LOCAL_RANK``.

    Returns:
        ``(context, device)``; a single process gets :data:`SINGLE` and ``device`` unchanged.

    Raises:
        ValueError: bad torchrun variables (:func:`env_context`), or more CUDA ranks on a node
            than it has GPUs.
    """
    ctx = env_context()
    if not ctx.enabled:
        return SINGLE, device
    device = torch.device(device)
    if device.type == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {ctx.local_rank} needs GPU {ctx.local_rank}, but this node has "
                             f"{torch.cuda.device_count()}; lower --nproc_per_node")
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    backend = backend_for(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(ctx.rank, ctx.world_size, ctx.local_rank, backend), device


def shutdown() -> None:
    """Leave the process group (a no-op for a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    """Ranks in the current process group; 1 without one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank; 0 without a process group."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def rank_seed(seed: int, rank: int) -> int:
    """The seed of ``rank``'s own randomness (encoder noise, dequantization, z ~ p(z)), derived
    from the run's ``seed``: rank 0 keeps ``seed``, so a one-rank run draws what a plain run draws;
    the others get distinct seeds in [0, 2**32)."""
    return (seed + 1_000_003 * rank) % 2**32


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of every rank's input is the sum over ranks of the incoming
    gradients (each rank's output depends on every rank's input)."""

    @staticmethod
    def forward(ctx, t):
        out = t.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def global_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over all ranks, differentiable: the backward pass sums the incoming gradients
    over ranks too, so a loss built on a global batch statistic gets, after DDP's averaging,
    the gradient it has in one process. The input unchanged in a one-rank world."""
    if world_size() == 1:
        return t
    return _AllReduceSum.apply(t)


@torch.no_grad()
def global_mean(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t (n_r, ...)`` over dim 0 and over all ranks' rows, not differentiable
    (``t.mean(0)`` in a one-rank world)."""
    if world_size() == 1:
        return t.mean(0)
    total = torch.cat([t.sum(0).flatten(), torch.tensor([float(t.shape[0])], dtype=t.dtype, device=t.device)])
    dist.all_reduce(total)
    return (total[:-1] / total[-1]).view(t.shape[1:])


@torch.no_grad()
def gather(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate every rank's ``t (n_r, ...)`` along dim 0, in rank order (sizes may differ;
    the trailing shape must agree). Not differentiable.

    Returns:
        ``(all, offset)``: the ``(Σ n_r, ...)`` tensor and where this rank's rows start in it.
        ``(t, 0)`` in a one-rank world.
    """
    world = world_size()
    if world == 1:
        return t, 0
    home = t.device
    if dist.get_backend() == "nccl":  # nccl moves CUDA tensors only
        t = t.to(torch.device("cuda", torch.cuda.current_device()))
    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes = [int(s) for s in sizes]
    padded = torch.zeros(max(sizes), *t.shape[1:], dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes)]).to(home), sum(sizes[: rank()])


def all_true(flag: bool) -> bool:
    """True when ``flag`` is true on every rank (``flag`` itself in a one-rank world)."""
    if world_size() == 1:
        return bool(flag)
    box = [None] * world_size()
    dist.all_gather_object(box, bool(flag))
    return all(box)


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s picklable ``obj`` on every rank (the input itself in a one-rank world)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


@torch.no_grad()
def broadcast_(*tensors: torch.Tensor, src: int = 0) -> None:
    """Overwrite ``tensors`` in place with rank ``src``'s values (a no-op in a one-rank world)."""
    if world_size() > 1:
        for t in tensors:
            dist.broadcast(t.data, src=src)  # DDP keeps CUDA tensors on a CUDA rank, as nccl needs


def barrier() -> None:
    """Wait for every rank (a no-op for a single process)."""
    if world_size() > 1:
        dist.barrier()


def shard(n: int, rank: int, world: int) -> slice:
    """The contiguous slice of ``range(n)`` that ``rank`` of ``world`` handles; shards differ in
    length by at most one and, in rank order, cover ``range(n)`` exactly once."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} must be in 0..{world - 1}")
    q, r = divmod(n, world)
    start = rank * q + min(rank, r)
    return slice(start, start + q + (rank < r))
