"""Latent interpolation paths between two codes."""
from __future__ import annotations

import torch

METHODS = ("linear", "spherical")


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int, method: str = "linear") -> torch.Tensor:
    """Codes along a path from ``z0`` to ``z1`` (both ``(d,)``): returns ``(steps, d)``, endpoints included.

    ``linear``: (1 - t) z0 + t z1. ``spherical`` (slerp, Shoemake 1985; White 2016 for GAN/VAE
    latents): sin((1 - t) theta)/sin(theta) z0 + sin(t theta)/sin(theta) z1, with theta the angle
    between z0 and z1; falls back to linear when they are (anti)parallel within 1e-6.

    Raises:
        ValueError: unknown method, steps < 2, or shapes that differ / are not 1-D.
    """
    if method not in METHODS:
        raise ValueError(f"unknown interpolation {method!r}; choose one of {list(METHODS)}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if z0.dim() != 1 or z0.shape != z1.shape:
        raise ValueError(f"need two codes of the same shape (d,), got {tuple(z0.shape)} and {tuple(z1.shape)}")
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device)[:, None]
    if method == "spherical":
        cos = torch.dot(z0, z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
        theta = torch.arccos(cos.clamp(-1, 1))
        if torch.sin(theta).abs() > 1e-6:
            return (torch.sin((1 - t) * theta) * z0 + torch.sin(t * theta) * z1) / torch.sin(theta)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Batched spherical interpolation: ``z0, z1`` ``(B, d)``, ``t`` ``(B,)`` or a float -> ``(B, d)``.

    The same formula as :func:`interpolate` with ``method="spherical"``, one t per pair; pairs
    whose angle has sin θ < 1e-6 fall back to linear.

    Raises:
        ValueError: ``z0`` and ``z1`` differ in shape or are not 2-D, or ``t`` has the wrong length.
    """
    if z0.dim() != 2 or z0.shape != z1.shape:
        raise ValueError(f"need two batches of codes of the same shape (B, d), got {tuple(z0.shape)} and {tuple(z1.shape)}")
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device)
    t = t.expand(z0.shape[0]) if t.dim() == 0 else t
    if t.shape != (z0.shape[0],):
        raise ValueError(f"t must be a float or ({z0.shape[0]},), got {tuple(t.shape)}")
    t = t[:, None]
    cos = (z0 * z1).sum(1, keepdim=True) / (z0.norm(dim=1, keepdim=True) * z1.norm(dim=1, keepdim=True)).clamp_min(1e-12)
    theta = torch.arccos(cos.clamp(-1, 1))
    sin = torch.sin(theta)
    ok = sin.abs() > 1e-6
    safe = torch.where(ok, sin, torch.ones_like(sin))
    spherical = (torch.sin((1 - t) * theta) * z0 + torch.sin(t * theta) * z1) / safe
    return torch.where(ok, spherical, (1 - t) * z0 + t * z1)
