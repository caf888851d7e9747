"""Image-space quality measures (no reference image needed).

``sharpness`` is the measure LSR-GAN reports (seed 004 §2.2: 0.17 ± 0.03 for VAE
reconstructions, 0.28 ± 0.08 for LSR-GAN, CIFAR-10): the Laplacian normalised by the local
average luminance, San Pedro & Siersdorfer (2009) §3.1.2,

    Sh = mean over pixels (x, y) of |L(x, y)| / μ(x, y),   L = ∂²I/∂x² + ∂²I/∂y²,

with L the 3 x 3 four-neighbour Laplacian and μ the 3 x 3 box mean of the luminance I.

Reading: the paper sums over pixels; 004's values (0.17, 0.28) are O(1) per image, so we take
the mean over the pixels where μ > 0 (pixels with no light around them have no defined ratio
and are skipped, as the OpenIMAJ implementation from the authors' university does). Images are
first quantised to 8 bits, as a measured image file is: without that, the 1e-4-level
background a sigmoid decoder leaves on MNIST turns into large, meaningless ratios of
near-zero numbers. Luminance of RGB images: ITU-R BT.601 weights (0.299, 0.587, 0.114).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def luminance(images: torch.Tensor) -> torch.Tensor:
    """``(B, 1 or 3, H, W)`` in [0, 1] -> luminance ``(B, 1, H, W)`` (BT.601 for RGB).

    Raises:
        ValueError: not a 4-D batch with 1 or 3 channels.
    """
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images (B, 1 or 3, H, W), got shape {tuple(images.shape)}")
    if images.shape[1] == 1:
        return images
    return (images * _LUMA.to(images).view(1, 3, 1, 1)).sum(1, keepdim=True)


def sharpness(images: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """Luminance-normalised Laplacian sharpness per image (see the module docstring).

    Args:
        images: ``(B, C, H, W)`` in [0, 1], C = 1 or 3.
        quantize: round to 8-bit levels first (default, as an image file would be).
    Returns:
        ``(B,)`` dimensionless; 0 for an image with no lit pixel.
    Raises:
        ValueError: bad shape (see :func:`luminance`).
    """
    lum = luminance(images.float().clamp(0, 1))
    if quantize:
        lum = (lum * 255).round() / 255
    lap = F.conv2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), _LAPLACIAN.to(lum).view(1, 1, 3, 3))
    mean = F.avg_pool2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    lit = mean > 0
    ratio = torch.where(lit, lap.abs() / mean.clamp_min(1e-12), torch.zeros_like(mean))
    return ratio.flatten(1).sum(1) / lit.flatten(1).sum(1).clamp_min(1)
