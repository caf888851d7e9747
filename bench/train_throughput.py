"""Training throughput (images/s) per model on the device it runs on, measured after warm-up.

One step is one optimiser step of the family's trainer (explorer.trainers): for the VAE family
one ELBO step; for lsr-gan a discriminator step plus a generator step (against the shipped
mnist ar-elbo-iso-i as the frozen base).

    python bench/train_throughput.py [--device auto] [--batch-size 128] [--steps 30] [--profile small]
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from explorer.data import load_dataset  # noqa: E402
from explorer.checkpoint import build_model  # noqa: E402
from explorer.models import ZOO  # noqa: E402
from explorer.trainers import trainer_for  # noqa: E402
from explorer.compute import resolve_device  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# Families that train against another checkpoint get it here.
OUTSIDE_PARTS = {"lsr-gan": {"base_path": str(ROOT / "checkpoints" / "mnist" / "ar-elbo-iso-i.safetensors")}}


def images_per_second(family: str, overrides: dict, x: torch.Tensor, batch_size: int, steps: int, warmup: int,
                      device: torch.device) -> float:
    """Training images/s of one model (full optimiser steps on ``x``), measured after ``warmup`` steps."""
    torch.manual_seed(0)
    model = build_model(family, **OUTSIDE_PARTS.get(family, {}), **overrides).to(device).train()
    trainer = trainer_for(model)
    opt = trainer.optimizers(model, trainer.default_lr)
    batches = x.split(batch_size)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for i in range(warmup):
        trainer.step(model, opt, batches[i % len(batches)])
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        trainer.step(model, opt, batches[i % len(batches)])
    sync()
    return steps * batch_size / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--profile", default="small")
    args = p.parse_args()
    device = resolve_device(args.device)
    x = load_dataset("mnist", "train", limit=args.batch_size * 8)[0].to(device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch_size}, profile {args.profile}")
    for name, (family, over) in ZOO.items():
        ips = images_per_second(family, {**over, "profile": args.profile}, x, args.batch_size, args.steps,
                                args.warmup, device)
        print(f"{name:<20} {ips:9.0f} images/s", flush=True)


if __name__ == "__main__":
    main()
