"""Coverage of each sampler against the encoder means and against one posterior draw per test image.

    python bench/coverage_reference.py [--dataset mnist] [--models vae consistency-vae]

Prints, per model and sampler, coverage / density / precision / recall (k = 5, 2,000 codes each) under both
definitions, with the model's active units: the numbers behind the Coverage page's "Test-image codes" choice.
"""
import argparse

import torch

from explorer.checkpoint import load
from explorer.data import load_dataset
from explorer.evaluate import coverage_metrics, posterior_draws
from explorer.layout import model_path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--models", nargs="+", default=["vae", "consistency-vae", "ar-elbo-iso-i", "ldc-vae"])
    p.add_argument("--checkpoints", default="checkpoints")
    args = p.parse_args()
    torch.set_num_threads(1)
    print("| model | AU | sampler | coverage vs means | coverage vs z ~ q(z|x) | density (means / draws) | precision (means / draws) |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name in args.models:
        model = load(model_path(args.checkpoints, args.dataset, name)).eval()
        mu = model.arrays["test_mu"]
        x, _ = load_dataset(args.dataset, "test", limit=len(mu))
        draws = posterior_draws(model, x, seed=0)
        au = model.meta.get("metrics", {}).get("active_units")
        for s in model.samplers:
            codes = model.arrays[s] if s in model.arrays else model.sample(len(mu), s, generator=torch.Generator().manual_seed(0))
            a, b = coverage_metrics(mu, codes), coverage_metrics(draws, codes)
            print(f"| {name} | {au} | {s} | {a['coverage']:.3f} | {b['coverage']:.3f} | {a['density']:.3f} / {b['density']:.3f} | "
                  f"{a['precision']:.3f} / {b['precision']:.3f} |")


if __name__ == "__main__":
    main()
