"""Training throughput under torchrun (DDP, gloo on the CPU): images/s for 1 and 2 ranks, and the
share of a step spent in the gradient all-reduce.

    python bench/ddp.py                      # runs the cases below through torchrun and prints a table
    python bench/ddp.py --model ar-elbo-iso-i --steps 200

Each case is ``torchrun --standalone --nproc_per_node R bench/ddp.py --rank-job ...``: every rank
trains ``--model`` (small profile, MNIST) at the global batch ``--batch-size`` through
:func:`explorer.training.fit`'s DDP path (:class:`explorer.training.DDPLoss`) and times its steps;
then it times the same steps under ``no_sync()`` (no all-reduce), and the all-reduce share is
1 - t(no_sync) / t(synced). The 1-rank cases run without torchrun, with 1 and 2 torch threads.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer import distributed  # noqa: E402
from explorer.data import load_dataset  # noqa: E402
from explorer.models import ZOO, model_class  # noqa: E402
from explorer.trainers import trainer_for  # noqa: E402
from explorer.training import DDPLoss, train_step  # noqa: E402


def rank_job(args) -> None:
    torch.set_num_threads(args.threads)
    _, device = distributed.init(torch.device("cpu"))
    rank, world = distributed.rank(), distributed.world_size()
    family, over = ZOO.get(args.model, (args.model, {}))
    cls = model_class(family)
    torch.manual_seed(0)
    model = cls(cls.config_class.from_dict({**over, "image_shape": (1, 28, 28)})).train()
    opt = trainer_for(cls).optimizers(model, 1e-3)
    x = load_dataset("mnist", "train", limit=args.batch_size * args.steps)[0]
    local = args.batch_size // world
    stepped = DDPLoss(model, device) if world > 1 else model

    def run(sync: bool) -> float:
        times = []
        for i in range(args.steps):
            batch = x[i * args.batch_size + rank * local: i * args.batch_size + (rank + 1) * local]
            distributed.barrier()
            t0 = time.perf_counter()
            if world > 1 and not sync:
                with stepped.ddp.no_sync():
                    train_step(stepped, opt, batch)
            else:
                train_step(stepped, opt, batch)
            times.append(time.perf_counter() - t0)
        return sorted(times[args.steps // 5:])[len(times[args.steps // 5:]) // 2]  # median after warm-up

    synced = run(True)
    unsynced = run(False) if world > 1 else synced
    if rank == 0:
        print(json.dumps({"ranks": world, "threads": args.threads, "step_ms": 1e3 * synced,
                          "images_per_s": args.batch_size / synced,
                          "allreduce_share": max(0.0, 1 - unsynced / synced)}), flush=True)
    distributed.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="vae")
    p.add_argument("--batch-size", type=int, default=64, help="the global batch")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank (--rank-job)")
    p.add_argument("--rank-job", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rank_job:
        return rank_job(args)
    env = {"GLOO_SOCKET_IFNAME": "lo",  # one machine: gloo on the loopback interface
           **{k: v for k, v in os.environ.items() if k not in distributed.TORCHRUN_VARS}}
    common = [str(Path(__file__).resolve()), "--rank-job", "--model", args.model,
              "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    cases = [(1, 1), (1, 2), (2, 1)]  # (ranks, threads per rank) on this machine's cores
    print(f"{args.model}, global batch {args.batch_size}, {args.steps} steps, {os.cpu_count()} cores, "
          f"torch {torch.__version__}")
    print("| ranks | threads/rank | step (ms) | images/s | all-reduce share |\n|---:|---:|---:|---:|---:|")
    for ranks, threads in cases:
        launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
                    if ranks > 1 else [sys.executable])
        out = subprocess.run([*launcher, *common, "--threads", str(threads)], env={**env, "OMP_NUM_THREADS": str(threads)},
                             capture_output=True, text=True, cwd=ROOT)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if out.returncode or not lines:
            print(f"| {ranks} | {threads} | failed: {out.stderr.strip().splitlines()[-1:]} | | |")
            continue
        r = json.loads(lines[-1])
        print(f"| {ranks} | {threads} | {r['step_ms']:.1f} | {r['images_per_s']:.0f} | "
              f"{100 * r['allreduce_share']:.0f} % |", flush=True)


if __name__ == "__main__":
    main()
