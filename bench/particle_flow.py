"""Particle-flow (SVGD towards one image's Gibbs posterior) wall time, with 1 and with 2 torch threads.

    python bench/particle_flow.py [--dataset mnist] [--busy]

Prints the seconds of :func:`explorer.models.ldc_vae.particle_flow` on the shipped LDC-VAE at the
Particle flow page's default (64 particles, 100 steps) and at its largest setting (128 particles,
200 steps), for ``torch.set_num_threads(1)`` and ``(2)``. ``--busy`` starts one other process that
keeps a core busy (as a second user's job would) for the duration. The app's thread count
(``LATENT_EXPLORER_THREADS``, app.py) is chosen from these numbers.
"""
import argparse
import multiprocessing as mp
import time

import torch

from explorer.checkpoint import load
from explorer.data import load_dataset
from explorer.layout import model_path
from explorer.models.ldc_vae import particle_flow


def spin(stop) -> None:
    x = 0
    while not stop.is_set():
        x += 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--checkpoints", default="checkpoints")
    p.add_argument("--busy", action="store_true", help="keep one other process busy while measuring")
    args = p.parse_args()
    model = load(model_path(args.checkpoints, args.dataset, "ldc-vae")).eval()
    x, _ = load_dataset(args.dataset, "test", limit=1)
    stop = mp.Event()
    other = mp.Process(target=spin, args=(stop,), daemon=True) if args.busy else None
    if other:
        other.start()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for n, steps in ((64, 100), (128, 200)):
                t = time.perf_counter()
                particle_flow(model, x[0], n, steps, 0.05, seed=0)
                print(f"threads {threads}  particles {n:3d}  steps {steps:3d}  {time.perf_counter() - t:6.2f} s"
                      + ("  (one other process busy)" if other else ""), flush=True)
    finally:
        stop.set()
        if other:
            other.join()


if __name__ == "__main__":
    main()
