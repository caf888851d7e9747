"""LDC-VAE's sampler target (reading 8): the kernel density over encoder particles, at several widths.

    python bench/ldc_kde.py [--dataset mnist] [--checkpoints checkpoints]

Prints, for 2,000 samples each: the classifier Fréchet distance against the 10,000 test images, the class
entropy and smallest class share, and the median squared distance to the nearest training image (first
1,000 samples), for the model's gmm-10, its sampler net, and samples drawn straight from the KDE over 8,192
encoder particles of training images at multiples of Scott's width; then the held-out mean log-likelihood
(nats) of 2,000 other training images' particles under that KDE per multiple, and the multiple
``cv_bandwidth_scale`` picks.
"""
import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import explorer  # noqa: E402
from explorer.classifier import load_classifier  # noqa: E402
from explorer.data import load_dataset  # noqa: E402
from explorer.layout import classifier_path, model_path  # noqa: E402
from explorer.metrics import feature_statistics, frechet_distance  # noqa: E402
from explorer.metrics.modes import class_histogram, mode_stats, nearest_sq_distances  # noqa: E402
from explorer.models.ldc_vae import KDE_SCALES, cv_bandwidth_scale, kde_bandwidth  # noqa: E402


@torch.no_grad()
def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    p.add_argument("--widths", type=float, nargs="+", default=[0.0, 0.5, 0.75, 1.0])
    a = p.parse_args()
    m = explorer.load(model_path(a.checkpoints, a.dataset, "ldc-vae"), expost=False)
    clf = load_classifier(classifier_path(a.dataset, a.checkpoints)).eval()
    x_train, x_test = load_dataset(a.dataset, "train")[0], load_dataset(a.dataset, "test")[0]
    ref = feature_statistics(torch.cat([clf.features(x_test[i:i + 1000]) for i in range(0, len(x_test), 1000)])
                             .double().numpy())
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x_train), generator=g)

    def particles(idx):
        x = x_train[idx]
        return torch.cat([m.encoder(x[i:i + 1024], torch.randn(x[i:i + 1024].shape, generator=g))
                          for i in range(0, len(x), 1024)])

    bank, held = particles(perm[:8192]), particles(perm[8192:10192])
    d, scott = bank.shape[1], float(kde_bandwidth(bank))

    def measure(name, z):
        img = torch.cat([m.decode(z[i:i + 500]) for i in range(0, len(z), 500)])
        f = clf.features(img)
        q = mode_stats(class_histogram(clf.head(f).argmax(1), 10))
        fd = frechet_distance(*feature_statistics(f.double().numpy()), *ref)
        nn = float(nearest_sq_distances(img[:1000], x_train).median())
        print(f"{name:>28}: FD {fd:7.1f}  class entropy {q['class_entropy']:.3f}  smallest class "
              f"{q['min_class_share']:.3f}  nearest-train median {nn:.2f}", flush=True)

    print(f"{a.dataset} ldc-vae ({m.config.sampler_kde_bandwidth} KDE, scale {float(m.kde_scale):g}); Scott's h "
          f"{scott:.3f}; test images' nearest-train median {float(nearest_sq_distances(x_test[:1000], x_train).median()):.2f}")
    measure("gmm-10", m.sample(2000, "gmm-10", generator=torch.Generator().manual_seed(1)))
    measure("sampler-net", m.sample(2000, "sampler-net", generator=torch.Generator().manual_seed(1)))
    k = torch.randint(len(bank), (2000,), generator=torch.Generator().manual_seed(2))
    noise = torch.randn(2000, d, generator=torch.Generator().manual_seed(3))
    for w in a.widths:
        measure(f"KDE at {w:g} x Scott", bank[k] + w * scott * noise)
    d2 = torch.cdist(held.double(), bank.double()).pow(2)
    for s in KDE_SCALES:
        h = s * scott
        ll = torch.logsumexp(-d2 / (2 * h * h), 1) - math.log(len(bank)) - 0.5 * d * math.log(2 * math.pi * h * h)
        print(f"held-out log-likelihood at {s:4.2f} x Scott: {float(ll.mean()):9.3f} nats")
    print(f"cv_bandwidth_scale on the bank (half against half): {cv_bandwidth_scale(bank):g}")


if __name__ == "__main__":
    main()
