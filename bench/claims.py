"""The seeds' two claims, measured on the shipped checkpoints through the public API.

    python bench/claims.py [--checkpoints checkpoints]

- AR-ELBO (seed 002 Table 3): test_mse(ar-elbo-iso-i) / test_mse(vae); the paper: 4.40 / 20.25 = 0.217.
- Consistency loss (seed 003 Fig. 3): drift_kl(consistency-vae) / drift_kl(vae); the paper: 0.79 / 3.09 = 0.256.
- LDC-VAE (seed 000 §V.B, Fig. 2): coverage of the encoder means of 2,000 test images by 2,000 codes of
  ldc-vae's sampler net, against N(0, I)'s coverage of the vae's encoder means (the paper shows it by t-SNE
  only); beside them every sampler of both models (``explorer.evaluate.sampler_coverage``).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import explorer  # noqa: E402
from explorer.evaluate import evaluate, sampler_coverage  # noqa: E402

CLAIMS = [("test_mse", "ar-elbo-iso-i", "vae", 4.40 / 20.25), ("drift_kl", "consistency-vae", "vae", 0.79 / 3.09)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    args = p.parse_args()
    for dataset in args.datasets:
        cache = {}
        for metric, num, den, paper in CLAIMS:
            for name in (num, den):
                if name not in cache:
                    cache[name] = evaluate(explorer.load(args.checkpoints / dataset / f"{name}.safetensors"), dataset,
                                           name=name)
            a, b = cache[num][metric], cache[den][metric]
            verdict = "holds" if a < b else "does NOT hold"
            print(f"{dataset:>13}  {metric}({num}) / {metric}({den}) = {a:.3f} / {b:.3f} = {a / b:.3f}   "
                  f"(paper {paper:.3f}; claim {verdict})", flush=True)
        cov = {name: sampler_coverage(explorer.load(args.checkpoints / dataset / f"{name}.safetensors"), dataset)
               for name in ("ldc-vae", "vae")}
        a, b = cov["ldc-vae"]["sampler-net"]["coverage"], cov["vae"]["prior"]["coverage"]
        verdict = "holds" if a > b else "does NOT hold"
        print(f"{dataset:>13}  coverage(ldc-vae sampler-net) vs coverage(vae prior) = {a:.3f} vs {b:.3f}   "
              f"(claim {verdict})", flush=True)
        for name, per in cov.items():
            print(f"{'':>13}    {name}: " + ", ".join(f"{s} coverage {m['coverage']:.3f} (precision {m['precision']:.3f}, "
                                                     f"recall {m['recall']:.3f})" for s, m in per.items()), flush=True)


if __name__ == "__main__":
    main()
