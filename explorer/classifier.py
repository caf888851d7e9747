"""A small CNN classifier per dataset, whose penultimate features give a fast Fréchet distance.

This is the ``classifier`` backbone of :mod:`explorer.metrics.backbones`: a CPU-speed stand-in
for the TF-Inception FID when comparing models quickly. Its Fréchet distances are NOT FID and
are labelled "FD (classifier)" everywhere; they are comparable only with each other, for the
same dataset and the same shipped classifier file.

Architecture: two 3 x 3 conv blocks (32 and 64 channels, ReLU, 2 x 2 max-pool each), a
128-unit fully connected layer (ReLU) — its activations are the features ``(B, 128)`` — and a
linear layer to the 10 class logits. Trained with cross-entropy by the project's standard loop
(:func:`explorer.training.train`) via ``python train.py --model classifier --dataset NAME``.

Checkpoint: ``checkpoints/<dataset>/backbones/classifier.safetensors`` (a subfolder, so model
listings never mistake it for a latent model): the weights, and string metadata ``format``
(``latent-explorer-classifier/1``), ``config`` and ``meta`` (JSON; command, seed, device, time,
test accuracy).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save as st_save
from torch import nn

from .configs import DictConfig
from .io import CheckpointError, atomic_write_bytes, json_field, read_safetensors
from .layout import classifier_path

__all__ = ["FORMAT", "Classifier", "ClassifierConfig", "classifier_path", "load_classifier", "save_classifier"]

FORMAT = "latent-explorer-classifier/1"


@dataclass
class ClassifierConfig(DictConfig):
    """``image_shape`` ``(C, H, W)`` (H, W divisible by 4), ``n_classes``, ``feature_dim`` (penultimate width)."""

    image_shape: tuple = (1, 28, 28)
    n_classes: int = 10
    feature_dim: int = 128

    def __post_init__(self):
        self.image_shape = tuple(int(v) for v in self.image_shape)
        if len(self.image_shape) != 3 or self.image_shape[1] % 4 or self.image_shape[2] % 4:
            raise ValueError(f"image_shape must be (C, H, W) with H and W divisible by 4, got {self.image_shape}")
        if self.n_classes < 2 or self.feature_dim < 1:
            raise ValueError(f"need n_classes >= 2 and feature_dim >= 1, got {self.n_classes}, {self.feature_dim}")



class Classifier(nn.Module):
    """CNN classifier: images ``(B, C, H, W)`` in [0, 1] -> logits ``(B, n_classes)``; see the module docstring."""

    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = config or ClassifierConfig()
        c, h, w = self.config.image_shape
        self.body = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), self.config.feature_dim), nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(self.config.feature_dim, self.config.n_classes)
        self.meta: dict = {}

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.config.image_shape:
            raise ValueError(f"expected images (B, {', '.join(map(str, self.config.image_shape))}), got {tuple(x.shape)}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations: ``(B, C, H, W)`` -> ``(B, feature_dim)``. Raises ValueError on a bad shape."""
        self._check(x)
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy (nats, batch mean) on ``x (B, C, H, W)``, labels ``y (B,)``; also the batch ``accuracy``."""
        logits = self(x)
        return {"loss": F.cross_entropy(logits, y), "accuracy": (logits.argmax(1) == y).float().mean()}

    def on_step(self, terms) -> None:
        """Hook of the training loop; nothing to do."""

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
        """Fraction of ``x (N, C, H, W)`` classified as ``y (N,)``, in eval mode."""
        was = self.training
        self.eval()
        dev = next(self.parameters()).device
        correct = sum(int((self(x[i:i + batch_size].to(dev)).argmax(1).cpu() == y[i:i + batch_size]).sum())
                      for i in range(0, len(x), batch_size))
        self.train(was)
        return correct / len(x)


def save_classifier(model: Classifier, path: str | Path, meta: dict) -> None:
    """Write the classifier atomically as safetensors with JSON ``config`` and ``meta``."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "config": json.dumps(model.config.to_dict()), "meta": json.dumps(meta)}
    atomic_write_bytes(path, st_save(tensors, metadata=header))


def load_classifier(path: str | Path) -> Classifier:
    """Load a classifier written by :func:`save_classifier` (eval mode, CPU); ``.meta`` holds its metadata.

    Raises:
        CheckpointError: missing, corrupt or foreign file, or weights that do not fit the config;
            the message names the file and how to make one.
    """
    path = Path(path)
    how = "train one with: python train.py --model classifier --dataset NAME --epochs 3"
    if not path.is_file():
        raise CheckpointError(f"{path}: no classifier checkpoint there; {how}")
    header, state = read_safetensors(path, FORMAT, what="a classifier checkpoint", hint=how)
    try:
        model = Classifier(ClassifierConfig.from_dict(json_field(header, "config", path)))
        model.load_state_dict(state)
        model.meta = json_field(header, "meta", path, default="{}")
    except Exception as e:  # damaged header, wrong shapes
        raise CheckpointError(f"{path}: cannot read classifier checkpoint ({type(e).__name__}: {e}); {how}") from e
    return model.eval()
