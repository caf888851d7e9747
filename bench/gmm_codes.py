"""Which codes the ex-post GMM-10 is fitted on: encoder means (the shipped reading) or one draw z ~ q(z|x) per
training image (the aggregate posterior itself).

    python bench/gmm_codes.py [--dataset fashion-mnist] [--models vae consistency-vae vae-2d] [--n 10000]
                              [--components 10]

``explorer/expost.py`` and ``explorer.evaluate.fit_gmm`` fit every ex-post sampler on the encoder means
``model.encode(x)`` of the training split. The aggregate posterior q(z) = E_x q(z|x) is what the decoder was
trained on, so a GMM fitted on posterior draws (:func:`explorer.evaluate.posterior_draws`) is the other
defensible reading. For each model this script fits a ``--components``-component GMM
(:class:`explorer.samplers.gmm.GaussianMixtureSampler`, seed 0) on both code sets, decodes ``--n`` samples of
each (seed 0) and prints the classifier Fréchet distance against the training images (the protocol of
``results/<dataset>-classifier.json``), precision/recall, the class entropy and smallest class share of all
``--n``, the class entropy of the first 2,000 (what ``tests/test_evaluate.py`` judges), and the median squared
distance from the first 2,000 samples to their nearest training image. Nothing is written.
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import explorer  # noqa: E402
from explorer.data import load_dataset  # noqa: E402
from explorer.evaluate import posterior_draws, shipped_classifier, train_codes  # noqa: E402
from explorer.layout import list_models, model_path  # noqa: E402
from explorer.metrics import feature_statistics  # noqa: E402
from explorer.metrics.backbones import get_backbone  # noqa: E402
from explorer.metrics.modes import class_histogram, classify, mode_stats  # noqa: E402
from explorer.metrics.protocol import compare, reference_features, set_modes  # noqa: E402
from explorer.samplers.gmm import GaussianMixtureSampler  # noqa: E402

DEFAULT_MODELS = ("vae", "consistency-vae", "vae-2d")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fashion-mnist", choices=("mnist", "fashion-mnist"))
    p.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--components", type=int, default=10)
    a = p.parse_args()
    if a.n < 2000 or a.components < 1:
        p.error(f"need --n >= 2000 and --components >= 1, got --n {a.n} and --components {a.components}")
    shipped = list_models(a.checkpoints, a.dataset)
    unknown = [m for m in a.models if m not in shipped]
    if unknown:
        p.error(f"--models {' '.join(unknown)}: not shipped for {a.dataset}; shipped: {', '.join(shipped)}")
    x_train = load_dataset(a.dataset, "train")[0]
    backbone, clf = get_backbone("classifier", a.dataset, checkpoints=a.checkpoints), shipped_classifier(a.dataset, a.checkpoints)
    ref = reference_features(a.dataset, backbone, log=lambda s: None)[0]
    ref_stats = feature_statistics(ref.double().numpy())
    test_nn = set_modes(load_dataset(a.dataset, "test")[0][:2000], clf, 10, x_train)["nn_median"]
    print(f"{a.dataset}: test images' nearest-train median {test_nn:.2f}; GMM-{a.components}, n = {a.n}", flush=True)
    print("| model | GMM fitted on | FD | precision | recall | class entropy (n) | smallest class | class entropy "
          "(2,000) | nearest-train median |\n|---|---|---|---|---|---|---|---|---|")
    for name in a.models:
        t0 = time.time()
        m = explorer.load(model_path(a.checkpoints, a.dataset, name), expost=False).eval()
        for label, codes in (("encoder means", train_codes(m, a.dataset)),
                             ("one posterior draw per image", posterior_draws(m, x_train, seed=0))):
            gmm = GaussianMixtureSampler(codes.shape[1], a.components).fit(codes, seed=0)
            with torch.no_grad():
                z = gmm.sample(a.n, generator=torch.Generator().manual_seed(0))
                img = torch.cat([m.decode(z[i:i + 1000]) for i in range(0, len(z), 1000)])
            r = {**compare(backbone.features(img), ref, ref_stats, 5000), **set_modes(img, clf, 10, x_train)}
            h2k = mode_stats(class_histogram(classify(clf, img[:2000]), 10))["class_entropy"]
            print(f"| {name} | {label} | {r['fd']:.1f} | {r['precision']:.3f} | {r['recall']:.3f} | "
                  f"{r['class_entropy']:.3f} | {100 * r['min_class_share']:.1f}% | {h2k:.3f} | {r['nn_median']:.2f} |",
                  flush=True)
        print(f"<!-- {name}: {time.time() - t0:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
