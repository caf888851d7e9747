"""The seeds' two claims, measured on the shipped checkpoints through the public API.

    python bench/claims.py [--checkpoints checkpoints]

- AR-ELBO (seed 002 Table 3): test_mse(ar-elbo-iso-i) / test_mse(vae); the paper: 4.40 / 20.25 = 0.217.
- Consistency loss (seed 003 Fig. 3): drift_kl(consistency-vae) / drift_kl(vae); the paper: 0.79 / 3.09 = 0.256.
- LDC-VAE (seed 000 §V.B, Fig. 2): coverage of the encoder means of 2,000 test images by 2,000 codes of
  ldc-vae's sampler net, against N(0, I)'s coverage of the vae's encoder means (the paper shows it by t-SNE
  only); beside them every sampler of both models (``explorer.evaluate.sampler_coverage``: prior, gmm-10,
  and gmm-100, two-stage where an ex-post sidecar is fitted, sampler-net for ldc-vae).
- LSR-GAN (seed 004 §2.2): sharpness(G(μ(x))) / sharpness(VAE reconstruction), target >= 1.3 (paper
  0.28 / 0.17 = 1.65 on CIFAR-10), for every shipped λ; latent_recovery(lsr-gan) /
  latent_recovery(lsr-gan-lambda0), target <= 0.5 (``lsr-gan`` is the default λ, 5e-4: reading 7); the measures
  of every shipped lsr-gan* (``explorer.evaluate.lsr_gan_metrics``).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import explorer  # noqa: E402
from explorer.data import load_dataset  # noqa: E402
from explorer.compute import N_APP  # noqa: E402
from explorer.evaluate import evaluate, lsr_gan_metrics, sampler_coverage  # noqa: E402
from explorer.layout import list_models, model_path  # noqa: E402

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
                    cache[name] = evaluate(explorer.load(model_path(args.checkpoints, dataset, name)), dataset,
                                           name=name)
            a, b = cache[num][metric], cache[den][metric]
            verdict = "holds" if a < b else "does NOT hold"
            print(f"{dataset:>13}  {metric}({num}) / {metric}({den}) = {a:.3f} / {b:.3f} = {a / b:.3f}   "
                  f"(paper {paper:.3f}; claim {verdict})", flush=True)
        cov = {name: sampler_coverage(explorer.load(model_path(args.checkpoints, dataset, name)), dataset)
               for name in ("ldc-vae", "vae")}
        a, b = cov["ldc-vae"]["sampler-net"]["coverage"], cov["vae"]["prior"]["coverage"]
        verdict = "holds" if a > b else "does NOT hold"
        print(f"{dataset:>13}  coverage(ldc-vae sampler-net) vs coverage(vae prior) = {a:.3f} vs {b:.3f}   "
              f"(claim {verdict})", flush=True)
        for name, per in cov.items():
            print(f"{'':>13}    {name}: " + ", ".join(f"{s} coverage {m['coverage']:.3f} (precision {m['precision']:.3f}, "
                                                     f"recall {m['recall']:.3f})" for s, m in per.items()), flush=True)
        lsr_gan_claims(args.checkpoints, dataset)


def lsr_gan_claims(folder: Path, dataset: str) -> None:
    x = load_dataset(dataset, "test", limit=N_APP)[0]
    m = {name: lsr_gan_metrics(explorer.load(p), x) for name, p in list_models(folder, dataset).items()
         if name.startswith("lsr-gan")}
    if "lsr-gan" not in m or "lsr-gan-lambda0" not in m:
        print(f"{dataset:>13}  lsr-gan claims: lsr-gan and lsr-gan-lambda0 are not both shipped", flush=True)
        return
    for name, v in m.items():
        verdict = "holds" if v["sharpness_ratio"] >= 1.3 else "does NOT hold"
        print(f"{dataset:>13}  sharpness({name} G(mu(x))) / sharpness(VAE recon) = {v['sharpness']:.3f} / "
              f"{v['base_sharpness']:.3f} = {v['sharpness_ratio']:.3f}   (target >= 1.3, paper 1.65; {verdict})",
              flush=True)
    s = m["lsr-gan"]
    r = s["latent_recovery"] / m["lsr-gan-lambda0"]["latent_recovery"]
    verdict = "holds" if r <= 0.5 else "does NOT hold"
    print(f"{dataset:>13}  latent_recovery(lsr-gan) / latent_recovery(lsr-gan-lambda0) = {s['latent_recovery']:.3f} / "
          f"{m['lsr-gan-lambda0']['latent_recovery']:.3f} = {r:.3f}   (target <= 0.5; {verdict})", flush=True)
    for name, v in m.items():
        print(f"{'':>13}    {name}: sharpness {v['sharpness']:.3f} (VAE {v['base_sharpness']:.3f}, data "
              f"{v['data_sharpness']:.3f}), recon_mse {v['recon_mse']:.2f} (VAE {v['base_recon_mse']:.2f}), "
              f"latent_recovery {v['latent_recovery']:.3f}, imagination_variance {v['imagination_variance']:.3f} "
              f"(VAE {v['base_imagination_variance']:.3f})", flush=True)


if __name__ == "__main__":
    main()
