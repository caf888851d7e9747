"""Encoder and decoder networks for the two architecture profiles.

- ``small``: a CPU-friendly conv net (about 0.35M parameters at d = 16 on 28x28), used by
  the shipped checkpoints.
- ``paper``: the MNIST architecture of AR-ELBO (seed 002) App. J.1, after Chen et al. (2016):
  encoder Conv64-Conv128 (5x5, stride 2) - FC1024 - BN - FC 2d; decoder FC1024 - BN -
  FC 128x7x7 - BN - ConvT64 - BN - ConvT1 - sigmoid. For colour images, App. J.2's CelebA
  architecture (:func:`paper_colour_nets`), also used at 32 x 32 for CIFAR-10.

Encoders map ``(B, C, H, W)`` to ``(B, out_dim)``; decoders map ``(B, d)`` to
``(B, C, H, W)`` logits (the model applies the sigmoid). Both profiles need H = W divisible by 4.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

PROFILES: dict[str, Callable[..., tuple[nn.Module, nn.Module]]] = {}


def register_profile(name: str):
    def wrap(fn):
        PROFILES[name] = fn
        return fn
    return wrap


def _check_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    c, h, w = shape
    if h != w or h % 4:
        raise ValueError(f"image shape {shape} is not supported: need square images with side divisible by 4")
    return c, h, w


@register_profile("small")
def small_nets(image_shape: tuple[int, int, int], enc_out: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """Small conv encoder/decoder: 32-64-128 channels, 4x4 stride-2 convs, no batch norm."""
    c, h, _ = _check_shape(image_shape)
    s = h // 8 + (1 if h % 8 else 0)  # 28 -> 14 -> 7 -> 4
    encoder = nn.Sequential(
        nn.Conv2d(c, 32, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU(),
        nn.Flatten(), nn.Linear(128 * s * s, enc_out),
    )
    out_pad = 0 if (h // 4) % 2 else 1  # 7 -> ... : 4 -> 7 needs no output padding, 8 -> 16 needs one
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 128 * s * s), nn.ReLU(),
        nn.Unflatten(1, (128, s, s)),
        nn.ConvTranspose2d(128, 64, 3, 2, 1, output_padding=out_pad), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
        nn.ConvTranspose2d(32, c, 4, 2, 1),
    )
    return encoder, decoder


@register_profile("paper")
def paper_nets(image_shape: tuple[int, int, int], enc_out: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """AR-ELBO App. J.1 (MNIST) architecture; 5x5 stride-2 (de)convolutions. Colour images
    (C = 3) get App. J.2's (:func:`paper_colour_nets`)."""
    c, h, _ = _check_shape(image_shape)
    if c == 3:
        return paper_colour_nets(image_shape, enc_out, latent_dim)
    s = h // 4
    encoder = nn.Sequential(
        nn.Conv2d(c, 64, 5, 2, 2), nn.ReLU(),
        nn.Conv2d(64, 128, 5, 2, 2), nn.ReLU(),
        nn.Flatten(), nn.Linear(128 * s * s, 1024), nn.BatchNorm1d(1024), nn.ReLU(),
        nn.Linear(1024, enc_out),
    )
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 1024), nn.BatchNorm1d(1024), nn.ReLU(),
        nn.Linear(1024, 128 * s * s), nn.BatchNorm1d(128 * s * s), nn.ReLU(),
        nn.Unflatten(1, (128, s, s)),
        nn.ConvTranspose2d(128, 64, 5, 2, 2, output_padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, c, 5, 2, 2, output_padding=1),
    )
    return encoder, decoder


def paper_colour_nets(image_shape: tuple[int, int, int], enc_out: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """AR-ELBO App. J.2 (CelebA 64 x 64; after Chen et al. 2016's DCGAN pair, with ReLU):
    encoder Conv128 - ReLU - Conv256 - BN - ReLU - Conv512 - BN - ReLU - Conv1024 - BN - ReLU -
    FC 2d; decoder FC 1024 x (H/8)² - ConvT512 - ReLU - ConvT256 - BN - ReLU - ConvT128 - BN -
    ReLU - ConvT C. Every conv and every transposed conv but the last is 5x5 with stride 2; the
    last is 5x5 with stride 1 (the text gives its output size only).

    Reading: App. J.2 writes "FC8x8x1024, size of (1024, 4, 4)"; three stride-2 ConvTs reach 64
    only from 8 x 8, so the FC output is 1024 x 8 x 8 for 64 x 64 (H/8 in general: 4 x 4 for
    CIFAR-10's 32 x 32, the same net on the smaller images, as 004 App. D also trains CIFAR-10).
    Needs H divisible by 16.
    """
    return _conv5_colour_nets(image_shape, enc_out, latent_dim, "paper", bn_first=False)


def _conv5_colour_nets(image_shape: tuple[int, int, int], enc_out: int, latent_dim: int, profile: str,
                       bn_first: bool) -> tuple[nn.Module, nn.Module]:
    """The CelebA pair that AR-ELBO App. J.2 and RAE share: encoder Conv128-256-512-1024 (5x5,
    stride 2, ReLU) - FC; decoder FC 1024 x (H/8)² - ConvT512-256-128 (5x5, stride 2, ReLU) -
    ConvT C (5x5, stride 1). Batch norm after every hidden conv but the first of each network,
    or after every one with ``bn_first``. Raises ValueError unless H is divisible by 16."""
    c, h, _ = _check_shape(image_shape)
    if h % 16:
        raise ValueError(f"image shape {image_shape} is not supported by the colour {profile} profile: side must be "
                         f"divisible by 16 (32 for CIFAR-10, 64 for CelebA)")

    def block(layer, ch, i):
        return [layer] + ([nn.BatchNorm2d(ch)] if i or bn_first else []) + [nn.ReLU()]

    enc, ch_in = [], c
    for i, ch in enumerate((128, 256, 512, 1024)):
        enc += block(nn.Conv2d(ch_in, ch, 5, 2, 2), ch, i)
        ch_in = ch
    dec = []
    for i, (ch_in, ch) in enumerate(((1024, 512), (512, 256), (256, 128))):
        dec += block(nn.ConvTranspose2d(ch_in, ch, 5, 2, 2, output_padding=1), ch, i)
    s = h // 8
    encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(1024 * (h // 16) ** 2, enc_out))
    decoder = nn.Sequential(nn.Linear(latent_dim, 1024 * s * s), nn.Unflatten(1, (1024, s, s)), *dec,
                            nn.ConvTranspose2d(128, c, 5, 1, 2))
    return encoder, decoder


@register_profile("small-bn")
def small_bn_nets(image_shape: tuple[int, int, int], enc_out: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """The ``small`` nets with batch norm after every hidden layer, as the RAE nets have.

    For models with no KL term to hold the latent scale (LDC-VAE): without batch norm the
    unregularised autoencoder inflates ||z|| and saturates the sigmoid within ~20 Adam steps
    (measured: per-image SSE stuck at the mean image's 85-92), with it the same loop trains.
    """
    c, h, _ = _check_shape(image_shape)
    s = h // 8 + (1 if h % 8 else 0)
    out_pad = 0 if (h // 4) % 2 else 1
    encoder = nn.Sequential(
        nn.Conv2d(c, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 128, 3, 2, 1), nn.BatchNorm2d(128), nn.ReLU(),
        nn.Flatten(), nn.Linear(128 * s * s, enc_out),
    )
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 128 * s * s), nn.BatchNorm1d(128 * s * s), nn.ReLU(),
        nn.Unflatten(1, (128, s, s)),
        nn.ConvTranspose2d(128, 64, 3, 2, 1, output_padding=out_pad), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.ConvTranspose2d(32, c, 4, 2, 1),
    )
    return encoder, decoder


@register_profile("rae")
def rae_nets(image_shape: tuple[int, int, int], enc_out: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """RAE (Ghosh et al. 2020, App. D, MNIST) architecture, the one LDC-VAE adapts (seed 000 §V.A).

    Encoder Conv128-Conv256-Conv512-Conv1024 (4x4, stride 2, each BN-ReLU) - FC; decoder FC
    1024 x s x s - BN - ReLU - ConvT512 - BN - ReLU - ConvT256 - BN - ReLU - ConvT C. Adapted
    to 28 x 28 inputs: the decoder starts at s = H / 4 (7 for MNIST; RAE starts at 8 for
    32 x 32) and its last layer is a stride-1 3x3 transposed conv. Colour images (C = 3) get RAE's
    CelebA network (:func:`rae_colour_nets`).
    """
    c, h, _ = _check_shape(image_shape)
    if c == 3:
        return rae_colour_nets(image_shape, enc_out, latent_dim)
    s, side, layers, ch_in = h // 4, h, [], c
    for ch in (128, 256, 512, 1024):
        layers += [nn.Conv2d(ch_in, ch, 4, 2, 1), nn.BatchNorm2d(ch), nn.ReLU()]
        ch_in, side = ch, side // 2
    encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(1024 * side * side, enc_out))
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 1024 * s * s), nn.BatchNorm1d(1024 * s * s), nn.ReLU(),
        nn.Unflatten(1, (1024, s, s)),
        nn.ConvTranspose2d(1024, 512, 4, 2, 1), nn.BatchNorm2d(512), nn.ReLU(),
        nn.ConvTranspose2d(512, 256, 4, 2, 1), nn.BatchNorm2d(256), nn.ReLU(),
        nn.ConvTranspose2d(256, c, 3, 1, 1),
    )
    return encoder, decoder


def rae_colour_nets(image_shape: tuple[int, int, int], enc_out: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """RAE's CelebA network (Ghosh et al. 2020, App. D, after WAE's; the colour form of the network
    LDC-VAE adapts, seed 000 §V.A): encoder Conv128-Conv256-Conv512-Conv1024 (5x5, stride 2, each
    BN-ReLU) - FC; decoder FC 1024 x (H/8)² - ConvT512 - ConvT256 - ConvT128 (5x5, stride 2, each
    BN-ReLU) - ConvT C (5x5, stride 1). As AR-ELBO App. J.2's network but with batch norm on every
    hidden layer (:func:`paper_colour_nets`). Needs H divisible by 16 (32 for CIFAR-10, 64 for CelebA).
    """
    return _conv5_colour_nets(image_shape, enc_out, latent_dim, "rae", bn_first=True)


class ResBlock(nn.Module):
    """A pre-activation residual block that halves (``down``) or doubles (``up``) the side: main path
    BN-ReLU-[up x2]-Conv3x3-BN-ReLU-Conv3x3-[avg-pool /2], shortcut [up x2]-Conv1x1-[avg-pool /2]. Seed 004
    App. D names "ResBlock down/up" and shows the block in its Figure 7, which the text copy lacks; this is
    the common form of He et al. 2016's block for GAN generators and encoders (reading in
    :func:`resnet_nets`)."""

    def __init__(self, ch_in: int, ch_out: int, direction: str):
        super().__init__()
        up = [nn.Upsample(scale_factor=2)] if direction == "up" else []
        down = [nn.AvgPool2d(2)] if direction == "down" else []
        self.main = nn.Sequential(nn.BatchNorm2d(ch_in), nn.ReLU(), *up, nn.Conv2d(ch_in, ch_out, 3, 1, 1),
                                  nn.BatchNorm2d(ch_out), nn.ReLU(), nn.Conv2d(ch_out, ch_out, 3, 1, 1), *down)
        self.shortcut = nn.Sequential(*up, nn.Conv2d(ch_in, ch_out, 1), *down)

    def forward(self, x):
        return self.main(x) + self.shortcut(x)


@register_profile("resnet")
def resnet_nets(image_shape: tuple[int, int, int], enc_out: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """LSR-GAN's VAE and generator (seed 004 App. D, Table 3): encoder ResBlock down 64 - down 128 -
    down 32 - FC 128 - BN - ReLU - FC; decoder/generator FC 512 - BN - ReLU - ResBlock up 128 - up 64 -
    up 32, then BN - ReLU - Conv3x3 C (the model applies the sigmoid).

    Readings: the "512 FC" of the decoder is the mirror of the encoder's flattened 32 x 4 x 4 = 512 at
    32 x 32 (004's CIFAR-10), so it is reshaped to 32 x (H/8)² and is 32·(H/8)² wide in general (2,048 at
    64 x 64); the block is :class:`ResBlock`; the last conv that maps 32 channels to the image is ours (the
    table ends at "ResBlock up 32"). Needs H divisible by 8.
    """
    c, h, _ = _check_shape(image_shape)
    if h % 8:
        raise ValueError(f"image shape {image_shape} is not supported by the resnet profile: side must be divisible by 8")
    s = h // 8
    encoder = nn.Sequential(ResBlock(c, 64, "down"), ResBlock(64, 128, "down"), ResBlock(128, 32, "down"),
                            nn.Flatten(), nn.Linear(32 * s * s, 128), nn.BatchNorm1d(128), nn.ReLU(),
                            nn.Linear(128, enc_out))
    decoder = nn.Sequential(nn.Linear(latent_dim, 32 * s * s), nn.BatchNorm1d(32 * s * s), nn.ReLU(),
                            nn.Unflatten(1, (32, s, s)), ResBlock(32, 128, "up"), ResBlock(128, 64, "up"),
                            ResBlock(64, 32, "up"), nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, c, 3, 1, 1))
    return encoder, decoder


def build_nets(profile: str, image_shape: tuple[int, int, int], enc_out: int, latent_dim: int):
    """Build ``(encoder, decoder)`` for ``profile``. Raises ValueError for an unknown profile."""
    if profile not in PROFILES:
        raise ValueError(f"unknown architecture profile {profile!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[profile](tuple(image_shape), enc_out, latent_dim)


def dcgan_discriminator(image_shape: tuple[int, int, int], width: int = 32) -> nn.Module:
    """DCGAN discriminator of LSR-GAN (seed 004 App. D, Table 3), scaled to 28 x 28 inputs.

    ``(B, C, H, W)`` in [0, 1] -> logits ``(B,)`` (the sigmoid of Table 3's last layer is folded
    into the loss, ``binary_cross_entropy_with_logits``, for numerical stability). Layers:
    Conv ``width`` (4x4, stride 2) - LeakyReLU(0.2); Conv 2 ``width`` (4x4, stride 2) - BN -
    LeakyReLU; Conv 4 ``width`` (3x3, stride 2; Table 3 has 4x4, which would leave 3 x 3 of a
    7 x 7 map) - BN - LeakyReLU; a final conv over the whole remaining map to one logit.
    28 -> 14 -> 7 -> 4 -> 1.

    Raises:
        ValueError: non-square images or a side not divisible by 4.
    """
    c, h, _ = _check_shape(image_shape)
    s = h // 8 + (1 if h % 8 else 0)
    return nn.Sequential(
        nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.BatchNorm2d(4 * width), nn.LeakyReLU(0.2),
        nn.Conv2d(4 * width, 1, s), nn.Flatten(0),
    )
