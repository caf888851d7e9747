"""Speed of one batched SVGD direction step (explorer.svgd) against a plain NumPy loop reference.

    python bench/svgd.py [--device auto|cpu|cuda] [--sets 100] [--particles 16] [--dims 16 64] [--repeats 200]

Also prints the LDC-VAE training throughput (images/s) against the VAE's on the same device.

For each latent size d, times one ``svgd_direction`` call on B sets x M particles (median of
``--repeats`` runs after warm-up, ms) and the same computation done by NumPy one set at a
time with a per-particle loop (median bandwidth, kernel row and direction of each particle),
then prints the ratio. The NumPy result is checked against the torch one before timing.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from explorer.svgd import svgd_direction  # noqa: E402
from explorer.compute import resolve_device  # noqa: E402


def numpy_svgd_direction(z: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Notebook-style reference: loop over sets, and in each set over particles. ``(B, M, d)`` -> same."""
    B, M, d = z.shape
    phi = np.empty_like(z)
    for b in range(B):
        x, s = z[b], score[b]
        sq = np.empty((M, M))
        for i in range(M):
            sq[i] = np.sum((x - x[i]) ** 2, axis=1)
        h = np.median(sq[np.triu_indices(M, 1)]) / np.log(M)
        for j in range(M):
            k = np.exp(-sq[:, j] / h)  # k(z_i, z_j) for all i
            grad_k = -(2.0 / h) * (x - x[j]) * k[:, None]  # grad_{z_i} k(z_i, z_j)
            phi[b, j] = (k @ s + grad_k.sum(axis=0)) / M
    return phi


def _median_ms(fn, repeats: int, warmup: int, sync=lambda: None) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def direction_speed(device: torch.device, sets: int, particles: int, dims, repeats: int, warmup: int) -> None:
    """Print the batched-vs-NumPy timing of one SVGD direction step for each d in ``dims``."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"svgd_direction, B = {sets} sets x M = {particles} particles, float32 torch vs float64 NumPy loops")
    print(f"{'d':>4} {'torch ms':>10} {'numpy ms':>10} {'ratio':>8}")
    for d in dims:
        g = torch.Generator().manual_seed(d)
        z = torch.randn(sets, particles, d, generator=g)
        s = torch.randn(sets, particles, d, generator=g)
        zn, sn = z.double().numpy(), s.double().numpy()
        zt, st = z.to(device), s.to(device)
        ref = numpy_svgd_direction(zn, sn)
        err = np.abs(svgd_direction(zt, st).double().cpu().numpy() - ref).max()
        if err > 1e-4:
            raise SystemExit(f"torch and NumPy directions differ by {err:.2e} at d = {d}")
        t_torch = _median_ms(lambda: svgd_direction(zt, st), repeats, warmup, sync)
        t_np = _median_ms(lambda: numpy_svgd_direction(zn, sn), max(5, repeats // 20), 2)
        print(f"{d:>4} {t_torch:>10.3f} {t_np:>10.2f} {t_np / t_torch:>7.0f}x", flush=True)


def ldc_vae_throughput(device: torch.device, batch_size: int = 100, steps: int = 20, warmup: int = 5) -> None:
    """Print LDC-VAE training images/s (M = 8 SVGD particles per image) against the VAE's, same device and batch."""
    from explorer.data import load_dataset
    from train_throughput import images_per_second  # bench/ is on sys.path when run as a script

    x = load_dataset("mnist", "train", limit=batch_size * 8)[0].to(device)
    vae = images_per_second("vae", {}, x, batch_size, steps, warmup, device)
    ldc = images_per_second("ldc-vae", {}, x, batch_size, steps, warmup, device)
    print(f"training throughput, batch {batch_size}: vae {vae:.0f} images/s, ldc-vae {ldc:.0f} images/s "
          f"(ldc-vae / vae = {ldc / vae:.2f})", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--sets", type=int, default=100)
    p.add_argument("--particles", type=int, default=16)
    p.add_argument("--dims", type=int, nargs="+", default=[16, 64])
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    args = p.parse_args()
    device = resolve_device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    direction_speed(device, args.sets, args.particles, args.dims, args.repeats, args.warmup)
    ldc_vae_throughput(device)


if __name__ == "__main__":
    main()
