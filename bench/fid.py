"""Feature-backbone throughput and Fréchet-distance time on the device it runs on.

    python bench/fid.py [--device auto] [--images 200]

Prints images/s of the TF-Inception backbone (standard FID; preprocessing included: 8-bit
quantise, resize to 299, TF range) and of the classifier backbone, each after one warm-up
batch, and the time of one Fréchet distance between 2048-d statistics (two eigendecompositions)
and between 128-d ones. The time for a 10k-image FID set follows: 10,000 / images/s.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from explorer.data import load_dataset  # noqa: E402
from explorer.metrics import frechet_distance  # noqa: E402
from explorer.metrics.backbones import get_backbone  # noqa: E402
from explorer.compute import resolve_device  # noqa: E402


def throughput(backbone, x: torch.Tensor, batch: int) -> float:
    backbone.features(x[:batch])  # warm-up: first pass over these shapes
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    backbone.features(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - t0)


def frechet_seconds(f: int, repeats: int = 3) -> float:
    rng = np.random.default_rng(0)
    stats = []
    for _ in range(2):
        a = rng.normal(size=(2 * f, f))
        stats += [a.mean(0), np.cov(a, rowvar=False)]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        frechet_distance(*stats)
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--images", type=int, default=200, help="images per timing (default 200)")
    args = p.parse_args()
    device = resolve_device(args.device)
    x, _ = load_dataset("mnist", "test", limit=max(args.images, 1000))
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    inception = get_backbone("inception", "mnist", device)
    ips = throughput(inception, x[:args.images], inception.batch_size)
    print(f"inception (FID)       {ips:9.1f} images/s  -> {10_000 / ips / 60:.1f} min per 10k-image set")
    classifier = get_backbone("classifier", "mnist", device)
    ips = throughput(classifier, x[:1000], 1000)
    print(f"classifier (FD)       {ips:9.0f} images/s  -> {10_000 / ips:.1f} s per 10k-image set")
    for f in (2048, 128):
        print(f"Fréchet distance, F = {f:4d}: {frechet_seconds(f) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
