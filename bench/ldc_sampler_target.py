"""LDC-VAE's sampler net retrained against a GMM instead of the KDE (readings tried in stops 27-28, not kept).

    python bench/ldc_sampler_target.py [--dataset mnist] [--sets 4] [--particles 32] [--kernel-scale 4]
                                       [--lr 1e-3] [--steps 3000] [--components 10] [--cov-scale 1]
                                       [--heads] [--n 10000]

Loads the shipped ``ldc-vae``, freezes its encoder and decoder, fits a ``--components``-component GMM
(:class:`explorer.samplers.gmm.GaussianMixtureSampler`) to one encoder particle E(x, ε) of every training
image (the aggregate posterior), and trains the sampler net S(ε, k) from its shipped weights with SVGD
towards that GMM's score (Algorithm 1 steps 5-7): ``--sets`` SVGD sets of ``--particles`` draws of one k
each, kernel width ``--kernel-scale`` x the median heuristic, Adam at ``--lr``; ``--cov-scale`` multiplies
the target's covariances (a correction for SVGD's variance collapse), ``--heads`` gives each k its own
last layer. Prints, for ``--n`` samples (seed 0) of the shipped sampler net, the GMM itself and the
retrained sampler net: the classifier Fréchet distance against the training images (the protocol of
``results/<dataset>-classifier.json``), precision/recall, the class entropy and smallest class share, the
spread (total variance of the codes drawn over that of the encoder particles), the mean log-density of
the codes drawn under the fitted GMM (above the GMM's own samples' value: drawn too close to its modes;
below: drawn into the gaps), and the median squared distance from the first 2,000 samples to their
nearest training image (memorisation). Nothing is written.
"""
import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import explorer  # noqa: E402
from explorer.data import load_dataset  # noqa: E402
from explorer.evaluate import posterior_draws, shipped_classifier  # noqa: E402
from explorer.layout import model_path  # noqa: E402
from explorer.metrics import feature_statistics  # noqa: E402
from explorer.metrics.backbones import get_backbone  # noqa: E402
from explorer.metrics.protocol import compare, reference_features, set_modes  # noqa: E402
from explorer.samplers.gmm import GaussianMixtureSampler  # noqa: E402
from explorer.svgd import amortized_svgd_loss  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    p.add_argument("--sets", type=int, default=4)
    p.add_argument("--particles", type=int, default=32)
    p.add_argument("--kernel-scale", type=float, default=4.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--components", type=int, default=10)
    p.add_argument("--cov-scale", type=float, default=1.0,
                   help="multiply the target GMM's covariances by this (> 0) for training only")
    p.add_argument("--heads", action="store_true",
                   help="give each component k its own last layer (S(eps, k) = W_k h(eps) + b_k + offset_k)")
    p.add_argument("--n", type=int, default=10_000)
    a = p.parse_args()
    if a.sets < 1 or a.particles < 2 or a.steps < 0 or a.n < 2 or a.components < 1 or a.cov_scale <= 0:
        p.error("need --sets >= 1, --particles >= 2, --steps >= 0, --n >= 2, --components >= 1, --cov-scale > 0")
    torch.manual_seed(0)
    m = explorer.load(model_path(a.checkpoints, a.dataset, "ldc-vae"), expost=False).eval()
    if a.sets > m.config.sampler_components:
        p.error(f"--sets must be at most the model's {m.config.sampler_components} sampler components")
    x_train = load_dataset(a.dataset, "train")[0]
    backbone, clf = get_backbone("classifier", a.dataset, checkpoints=a.checkpoints), shipped_classifier(a.dataset, a.checkpoints)
    ref = reference_features(a.dataset, backbone, log=lambda s: None)[0]
    ref_stats = feature_statistics(ref.double().numpy())

    def measure(name, sample):
        with torch.no_grad():
            z = sample(a.n, torch.Generator().manual_seed(0))
            spread = (z.var(0).sum() / codes.var(0).sum()).item()
            loglik = fit_gmm.log_prob(z).mean().item()
            img = torch.cat([m.decode(z[i:i + 500]) for i in range(0, len(z), 500)])
        r = {**compare(backbone.features(img), ref, ref_stats, 5000), **set_modes(img, clf, 10, x_train)}
        print(f"{name:>34}: FD {r['fd']:6.1f}  precision {r['precision']:.3f}  recall {r['recall']:.3f}  class "
              f"entropy {r['class_entropy']:.3f}  smallest class {r['min_class_share']:.3f}  nearest-train median "
              f"{r['nn_median']:.2f}  spread {spread:.2f}  GMM log-lik {loglik:.1f}", flush=True)

    t0 = time.time()
    codes = posterior_draws(m, x_train, seed=0)
    gmm = GaussianMixtureSampler(codes.shape[1], a.components).fit(codes, seed=0)
    fit_gmm = copy.deepcopy(gmm)  # never rescaled
    test_nn = set_modes(load_dataset(a.dataset, "test")[0][:2000], clf, 10, x_train)["nn_median"]
    print(f"{a.dataset}: test images' nearest-train median {test_nn:.2f}; GMM-{a.components} fitted on "
          f"{len(codes)} encoder particles in {time.time() - t0:.0f} s", flush=True)
    measure("shipped sampler net", lambda n, g: m.sample(n, "sampler-net", generator=g))
    measure(f"GMM-{a.components} (the target)", lambda n, g: gmm.sample(n, generator=g))
    gmm.scale_tril.mul_(a.cov_scale ** 0.5)
    cfg = m.config
    params = list(m.sampler_net.parameters()) + [m.sampler_offsets]
    last = m.sampler_net[-1]
    if a.heads:
        w_k = torch.nn.Parameter(last.weight.detach().repeat(cfg.sampler_components, 1, 1))  # (K, d, F)
        b_k = torch.nn.Parameter(last.bias.detach().repeat(cfg.sampler_components, 1))  # (K, d)
        params = list(m.sampler_net[:-1].parameters()) + [m.sampler_offsets, w_k, b_k]

    def codes_for(k, generator=None):
        if not a.heads:
            return m.sampler_codes(len(k), generator=generator, components=k)
        eps = torch.randn(len(k), *m.image_shape, generator=generator)
        h = m.sampler_net[:-1](eps)
        return (w_k[k] @ h[:, :, None]).squeeze(-1) + b_k[k] + m.sampler_offsets[k]

    def net_sample(n, g):
        with torch.no_grad():
            return codes_for(torch.randint(cfg.sampler_components, (n,), generator=g), g)

    opt = torch.optim.Adam(params, lr=a.lr)
    m.sampler_net.train()
    for _ in range(a.steps):
        k = torch.randperm(cfg.sampler_components)[:a.sets].repeat_interleave(a.particles)
        zs = codes_for(k)
        opt.zero_grad()
        amortized_svgd_loss(zs, gmm.score(zs), a.sets, a.kernel_scale)[0].backward()
        opt.step()
    m.eval()
    measure(f"retrained {a.sets}x{a.particles}, ks {a.kernel_scale:g}, cov x{a.cov_scale:g}, {a.steps} steps"
            + (", heads" if a.heads else ""), net_sample)
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
