"""Where tensors run and how they are batched (no other project imports)."""
from __future__ import annotations

import torch

N_APP = 2000  # test images / sampler codes precomputed for the app and measured for coverage


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda when available else cpu. Raises ValueError for cuda without a GPU or a bad name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


@torch.no_grad()
def batched(fn, x: torch.Tensor, batch_size: int = 1000, device: torch.device | str = "cpu"):
    """Apply ``fn`` to ``x`` in batches on ``device``; concatenates tensor outputs (or tuples or
    dicts of them) on the CPU."""
    outs = []
    for i in range(0, len(x), batch_size):
        out = fn(x[i:i + batch_size].to(device))
        if isinstance(out, dict):
            outs.append({k: v.cpu() for k, v in out.items()})
        else:
            outs.append(tuple(o.cpu() for o in out) if isinstance(out, tuple) else out.cpu())
    if isinstance(outs[0], dict):
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
    if isinstance(outs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outs))
    return torch.cat(outs)
