"""The FID protocol's table for the DDP test (tests/test_distributed.py): one shipped MNIST model,
a fixed linear map as the backbone (no Inception), written by rank 0 as JSON to ``--out``.

Run as ``torchrun --nproc_per_node 2 tests/helpers/eval_worker.py --out F --cache DIR`` or with
plain ``python``; the two tables must agree.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from explorer import distributed  # noqa: E402
from explorer.checkpoint import load  # noqa: E402
from explorer.metrics.protocol import evaluate_table  # noqa: E402


class LinearBackbone:
    """A fixed random projection of the pixels to 8 features."""

    name, label, feature_dim, key = "linear", "FD (linear test map)", 8, "linear-ddp-test"
    info = {"preprocessing": "fixed random projection"}

    def __init__(self):
        self.w = torch.randn(784, self.feature_dim, generator=torch.Generator().manual_seed(0))

    def features(self, images):
        return images.flatten(1) @ self.w


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--n", type=int, default=501)
    p.add_argument("--n-ref", type=int, default=1001)
    args = p.parse_args()
    torch.set_num_threads(1)
    _, device = distributed.init(torch.device("cpu"))
    root = Path(__file__).resolve().parents[2]
    models = {"vae": load(root / "checkpoints" / "mnist" / "vae.safetensors")}
    table = evaluate_table("mnist", LinearBackbone(), models, n=args.n, n_ref=args.n_ref, prdc_n=200,
                           device=device, cache=args.cache, progress=False, log=lambda s: None)
    if table is not None:
        args.out.write_text(json.dumps(table["rows"]))
    distributed.shutdown()


if __name__ == "__main__":
    main()
