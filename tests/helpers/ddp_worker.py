"""One training run of a model on synthetic-free real data, for the DDP tests (tests/test_distributed.py).

Run as ``torchrun --nproc_per_node 2 tests/helpers/ddp_worker.py ...`` (two gloo ranks) or as
``python tests/helpers/ddp_worker.py ...`` (one process), it trains ``--model`` on the first
``--images`` MNIST training images for ``--epochs`` epochs at the global ``--batch-size`` and writes
each rank's initial and final state dicts and the history to ``OUT-<model>.rank<R>.pt``.

``--no-noise`` replaces the random draws inside the losses (reparameterization noise,
dequantization) by constants, so that one process and two ranks see the same numbers: by design
each rank draws its own noise (:func:`explorer.distributed.rank_seed`), so with noise the two runs
differ by the noise, not by the gradient arithmetic the equivalence test checks.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from explorer import distributed  # noqa: E402
from explorer.checkpoint import load  # noqa: E402
from explorer.data import load_dataset  # noqa: E402
from explorer.models import ZOO, model_class  # noqa: E402
from explorer.trainers import trainer_for  # noqa: E402
from explorer.training import TrainConfig  # noqa: E402


def train_one(name: str, args: argparse.Namespace, ctx) -> None:
    family, over = ZOO.get(name, (name, {}))
    over = dict(over)
    cls = model_class(family)
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    for kv in args.set:
        k, v = kv.split("=", 1)
        if k not in fields:
            continue
        for parse in (int, float, str):
            try:
                over[k] = parse(v)
                break
            except ValueError:
                continue
    dims = {} if family == "lsr-gan" else {"latent_dim": args.latent_dim}  # LSR-GAN takes its base's d
    config = cls.config_class.from_dict({**over, "image_shape": (1, 28, 28), **dims})
    torch.manual_seed(0)
    model = cls.from_config(config, load=load)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = trainer_for(cls)
    images = load_dataset("mnist", "train", limit=args.images)[0].to(torch.get_default_dtype())
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=trainer.default_lr, seed=0)
    history = trainer.fit(model, images, cfg, progress=False, log=lambda s: None, resume_path=args.resume)
    torch.save({"state": model.state_dict(), "init": init, "history": history},
               args.out.with_name(f"{args.out.name}-{name}.rank{ctx.rank}.pt"))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", nargs="+", required=True, help="one or more models, trained in turn")
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--no-noise", action="store_true")
    p.add_argument("--float64", action="store_true", help="train in float64 (rounding differences stay ~1e-12)")
    p.add_argument("--set", nargs="*", default=[],
                   help="config overrides key=value (ints/floats parsed), for the models whose config has the key")
    p.add_argument("--resume", type=Path, help="the run's resume file (explorer.training.fit resume_path)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.no_noise:
        torch.randn_like = lambda t, **kw: torch.zeros_like(t, **kw)
        torch.rand_like = lambda t, **kw: torch.full_like(t, 0.5, **kw)
    if args.float64:
        torch.set_default_dtype(torch.float64)
    ctx, device = distributed.init(torch.device("cpu"))
    for name in args.model:
        train_one(name, args, ctx)
    distributed.shutdown()


if __name__ == "__main__":
    main()
