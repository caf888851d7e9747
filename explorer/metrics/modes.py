"""Mode coverage and memorisation of a sampler's decoded images.

Two checks that a Fréchet distance alone misses (a sampler that draws only "1"s, or one that
copies training images, can still score well on distances between feature statistics):

- **Mode coverage.** The decoded samples are labelled by the dataset's shipped classifier
  (:mod:`explorer.classifier`, the ``classifier`` backbone of the Fréchet tables). From the
  labels: the class histogram (shares summing to 1), its normalised entropy H / log K (1 for
  uniform shares, 0 for one class; K = 10 classes), the smallest class share, and the number of
  classes above 1 %. MNIST's and Fashion-MNIST's test sets are close to uniform (entropy 0.999),
  so a good sampler is near 1.
- **Memorisation.** The squared L2 distance in pixel space (per-image sum on [0, 1] pixels, the
  units of ``test_mse``) from each sample to its nearest training image; its median is reported
  beside the same median for test images, which are new draws from the data distribution. A
  sampler whose median is far below the test images' copies training data; one far above draws
  images unlike any training image (blur, noise).

Everything here is a plain function of tensors; the caller loads the classifier and the data.
"""
from __future__ import annotations

import math

import numpy as np
import torch

#: Share above which a class counts as present (``classes_above_1pct``).
PRESENT_SHARE = 0.01


def class_histogram(labels, n_classes: int) -> np.ndarray:
    """Shares of each class among ``labels``: ``(n,)`` ints in ``[0, n_classes)`` -> ``(n_classes,)`` summing to 1.

    Raises:
        ValueError: no labels, ``n_classes`` < 2, or a label outside ``[0, n_classes)``.
    """
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if y.size == 0:
        raise ValueError("class_histogram needs at least one label")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), got values in [{y.min()}, {y.max()}]")
    return np.bincount(y.astype(np.int64), minlength=n_classes) / y.size


def mode_stats(shares) -> dict:
    """Summary of a class histogram ``(K,)`` of shares (non-negative, summing to 1).

    Returns ``class_hist`` (list of K floats), ``class_entropy`` (H / log K in [0, 1], H in nats,
    0 log 0 = 0), ``min_class_share`` and ``classes_above_1pct`` (shares > 0.01).

    Raises:
        ValueError: fewer than 2 classes, negative shares, or shares that do not sum to 1.
    """
    p = np.asarray(shares, dtype=np.float64).reshape(-1)
    if p.size < 2 or (p < 0).any() or not math.isclose(p.sum(), 1.0, abs_tol=1e-6):
        raise ValueError(f"shares must be >= 2 non-negative values summing to 1, got {p.tolist()}")
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum() / math.log(p.size))
    return {"class_hist": [float(v) for v in p], "class_entropy": entropy, "min_class_share": float(p.min()),
            "classes_above_1pct": int((p > PRESENT_SHARE).sum())}


@torch.no_grad()
def classify(classifier, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted classes of ``images (n, C, H, W)`` in [0, 1] under ``classifier`` (eval mode): ``(n,)`` int64 on CPU."""
    classifier.eval()
    dev = next(classifier.parameters()).device
    return torch.cat([classifier(images[i:i + batch_size].to(dev)).argmax(1).cpu()
                      for i in range(0, len(images), batch_size)])


@torch.no_grad()
def nearest_sq_distances(x: torch.Tensor, ref: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Squared L2 distance from each image of ``x`` to its nearest image in ``ref``, in pixel space.

    Args:
        x: ``(n, C, H, W)`` (or ``(n, D)``) images; ref: ``(N, C, H, W)`` (or ``(N, D)``), same D.
    Returns:
        ``(n,)`` float32 per-image sums of squared differences (units of ``test_mse``), clamped at 0.
        Computed as ||a||² + ||b||² − 2 a·b in float32 per chunk of ``x`` (no ``(n, N, D)`` tensor);
        on [0, 1] pixels the rounding error is below 1e-3.
    Raises:
        ValueError: the images differ in size, or either set is empty.
    """
    a, b = x.reshape(len(x), -1), ref.reshape(len(ref), -1)
    if a.shape[1] != b.shape[1] or len(a) == 0 or len(b) == 0:
        raise ValueError(f"need non-empty image sets of the same size, got {tuple(x.shape)} and {tuple(ref.shape)}")
    b = b.float()
    b2 = b.pow(2).sum(1)
    out = []
    for i in range(0, len(a), batch_size):
        c = a[i:i + batch_size].float()
        d2 = c.pow(2).sum(1, keepdim=True) + b2[None] - 2.0 * c @ b.T
        out.append(d2.min(1).values.clamp_min(0.0).float())
    return torch.cat(out)


def sample_quality(images: torch.Tensor, classifier, train_images: torch.Tensor, n_classes: int,
                   test_nn_median: float | None = None, nn_n: int | None = None) -> dict:
    """Mode coverage and memorisation of decoded samples ``images (n, C, H, W)`` in [0, 1].

    Returns :func:`mode_stats` of the classifier's labels of all ``n`` images, ``n``,
    ``nn_median`` (median squared L2 distance from the first ``nn_n`` images, default all, to the
    nearest of ``train_images``; left out with ``nn_n = 0``) and ``nn_n``, and, when ``test_nn_median`` (the same median for
    test images) is given, ``nn_median_test`` and ``nn_ratio`` = nn_median / nn_median_test (1 for
    samples as novel as new data; well below 1 for copies of training images).
    """
    labels = classify(classifier, images)
    out = {"n": len(images), **mode_stats(class_histogram(labels, n_classes))}
    nn_n = len(images) if nn_n is None else min(nn_n, len(images))
    if nn_n == 0:
        return out
    out.update(nn_median=float(nearest_sq_distances(images[:nn_n], train_images).median()), nn_n=nn_n)
    if test_nn_median is not None:
        out["nn_median_test"] = float(test_nn_median)
        out["nn_ratio"] = out["nn_median"] / float(test_nn_median) if test_nn_median > 0 else None
    return out
