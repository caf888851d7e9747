"""Evaluation of trained models, and the arrays the app needs.

CLI::

    python -m explorer.evaluate checkpoints/mnist/*.safetensors --json

prints one JSON object per checkpoint with ``name, model, dataset, latent_dim, test_mse, kl,
drift_kl, drift_sq, active_units, sigma2, coverage, sampler_coverage``. See :func:`evaluate` for the definitions.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from functools import lru_cache
from pathlib import Path

import torch

from . import distributed
from .checkpoint import CheckpointError, load, load_checkpoint
from .classifier import load_classifier
from .compute import N_APP, batched, resolve_device
from .data import dataset_info, load_dataset
from .image_metrics import sharpness
from .io import file_sha256, read_table
from .layout import classifier_path, is_sidecar, list_models
from .losses import kl_gaussians, kl_std_normal, squared_error
from .metrics import active_units, feature_statistics, frechet_distance, mmd_rbf, prdc
from .metrics.backbones import BackboneUnavailable, get_backbone
from .metrics.modes import class_histogram, mode_stats, nearest_sq_distances, sample_quality
from .metrics.protocol import evaluate_table, merge_tables, write_table
from .models import LatentModel
from .projection import Projection

@torch.no_grad()
def drift(model: LatentModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Encode -> decode -> encode: ``x (B, C, H, W)`` -> dict of ``(B, d)`` / ``(B,)`` tensors.

    x' = decode(encode(x)); returns ``mu`` (= encode(x)), ``mu2`` (= encode(x')) and per-image
    ``drift_sq`` = ||mu2 - mu||^2 for every model. For Gaussian encoders also ``logvar``,
    ``logvar2`` and ``drift_kl`` = KL(q(z'|x') || q(z|x)) in nats (seed 003, Fig. 3); an
    implicit encoder (LDC-VAE) has no closed-form KL, so those keys are absent.
    """
    if not model.gaussian_encoder:
        mu = model.encode(x)
        mu2 = model.encode(model.decode(mu))
        return {"mu": mu, "mu2": mu2, "drift_sq": (mu2 - mu).pow(2).sum(1)}
    mu, logvar = model.posterior(x)
    mu2, logvar2 = model.posterior(model.decode(mu))
    return {"mu": mu, "logvar": logvar, "mu2": mu2, "logvar2": logvar2,
            "drift_kl": kl_gaussians(mu2, logvar2, mu, logvar), "drift_sq": (mu2 - mu).pow(2).sum(1)}


def coverage_metrics(real: torch.Tensor, fake: torch.Tensor, k: int = 5) -> dict[str, float]:
    """Precision, recall, density, coverage (k-NN, ``k``) and RBF MMD² of ``fake (n, d)`` against ``real (m, d)``."""
    cov = prdc(real, fake, k=k)
    cov["mmd"] = mmd_rbf(real, fake)
    return cov


@torch.no_grad()
def sampler_coverage(model: LatentModel, dataset: str, n: int = N_APP, seed: int = 0,
                     device: str | torch.device = "cpu", test_mu: torch.Tensor | None = None,
                     samplers: list[str] | None = None) -> dict[str, dict]:
    """Coverage of the encoder distribution by each sampler the model offers.

    For each name in ``samplers`` (default ``model.samplers``: ``prior``, ``gmm-10``, and where
    offered ``gmm-100``, ``two-stage``, ``sampler-net``): :func:`coverage_metrics` between ``n`` of its codes and
    the encoder means of the first ``n`` test images, in the full d-dimensional latent space
    (seed 000 §V.B, Fig. 2 compares the same two sets by t-SNE). ``test_mu (n, d)`` may be
    passed when already computed. Returns ``{sampler: {precision, recall, density, coverage, mmd}}``.
    """
    model = model.to(device).eval()
    if test_mu is None:
        x, _ = load_dataset(dataset, "test", limit=n)
        test_mu = batched(model.encode, x, device=device)
    out = {}
    for s in samplers or model.samplers:
        gen = torch.Generator().manual_seed(seed)
        out[s] = coverage_metrics(test_mu[:n], model.sample(n, s, generator=gen).cpu())
    return out


@lru_cache(maxsize=4)
def test_nn_median(dataset: str, n: int = N_APP) -> float:
    """Median squared L2 distance (pixel space, per-image sum) from each of the first ``n`` test
    images to its nearest training image: the memorisation reference of :func:`sampler_modes`."""
    return float(nearest_sq_distances(load_dataset(dataset, "test", limit=n)[0], load_dataset(dataset, "train")[0]).median())


def shipped_classifier(dataset: str, checkpoints: str | Path = "checkpoints"):
    """The dataset's classifier (:func:`explorer.classifier.load_classifier`), or None when it is
    not shipped under ``checkpoints`` (mode coverage is then left out)."""
    try:
        return load_classifier(classifier_path(dataset, checkpoints))
    except Exception:  # CheckpointError or a broken file: the caller reports the measure as absent
        return None


@torch.no_grad()
def sampler_modes(model: LatentModel, dataset: str, n: int = N_APP, seed: int = 0, device: str | torch.device = "cpu",
                  samplers: list[str] | None = None, checkpoints: str | Path = "checkpoints",
                  nn_n: int | None = None) -> dict[str, dict]:
    """Mode coverage and memorisation of each sampler's decoded images (:mod:`explorer.metrics.modes`).

    For each name in ``samplers`` (default ``model.samplers``): ``n`` codes (seed ``seed``, the
    codes :func:`app_arrays` stores), decoded and passed to :func:`explorer.metrics.modes.sample_quality`
    with the dataset's shipped classifier, the training split, and :func:`test_nn_median` of as
    many test images as samples searched (``nn_n``, default ``n``; 0 leaves memorisation out) as
    the reference. Returns ``{sampler: {n, class_hist, class_entropy, min_class_share,
    classes_above_1pct, nn_median, nn_median_test, nn_ratio}}``, or ``{}`` without a classifier.
    """
    classifier = shipped_classifier(dataset, checkpoints)
    if classifier is None:
        return {}
    classifier.to(device)
    model = model.to(device).eval()
    nn_n = n if nn_n is None else min(nn_n, n)
    train = load_dataset(dataset, "train")[0] if nn_n else None
    reference = test_nn_median(dataset, nn_n) if nn_n else None
    n_classes = len(dataset_info(dataset).classes)
    out = {}
    for s in samplers or model.samplers:
        z = model.sample(n, s, generator=torch.Generator().manual_seed(seed)).cpu()
        out[s] = sample_quality(batched(model.decode, z, device=device), classifier, train, n_classes, reference,
                                nn_n=nn_n)
    return out


@torch.no_grad()
def evaluate(model: LatentModel, dataset: str, name: str = "", device: str | torch.device = "cpu",
             n_coverage: int = N_APP, seed: int = 0) -> dict:
    """Metrics of a model on the full test split of ``dataset``.

    - ``test_mse``: per-image sum of squared errors on [0, 1] pixels, z = encoder mean, mean
      over the 10k test images (the MSE column of seed 002 Table 3);
    - ``kl``: mean KL(q(z|x) || N(0, I)), nats; null for implicit encoders (LDC-VAE);
    - ``drift_kl``: mean KL(q(z'|x') || q(z|x)), x' = decode(encode(x)), nats (seed 003 Fig. 3);
      null for implicit encoders;
    - ``drift_sq``: mean ||z' - z||^2 between posterior means (every model);
    - ``active_units``: Burda et al. (2016), Cov_x(E[z]) > 0.01;
    - ``sigma2``: the model's learned sigma_x^2 (mean over pixels), or null when fixed;
    - ``coverage``: precision/recall/density/coverage (k = 5) and RBF MMD^2 between
      ``n_coverage`` prior samples and the encoder means of the first ``n_coverage`` test
      images, in the full d-dimensional latent space;
    - ``sampler_coverage``: the same numbers for every sampler the model offers
      (:func:`sampler_coverage`);
    - ``sampler_modes``: class histogram, class entropy and memorisation of ``n_coverage`` decoded
      samples of every sampler (:func:`sampler_modes`; empty without the dataset's classifier).
    """
    model = model.to(device).eval()
    x, _ = load_dataset(dataset, "test")
    terms = batched(lambda b: _eval_batch(model, b), x, device=device)
    mu = terms["mu"]
    per_sampler = sampler_coverage(model, dataset, n=n_coverage, seed=seed, device=device, test_mu=mu[:n_coverage])
    mean = lambda key: float(terms[key].mean()) if key in terms else None  # noqa: E731
    family_metrics = FAMILY_METRICS.get(model.family, lambda *a, **k: {})
    return {
        "name": name, "model": model.family, "dataset": dataset, "latent_dim": model.latent_dim,
        "test_mse": mean("sse"), "kl": mean("kl"), "drift_kl": mean("drift_kl"),
        "drift_sq": mean("drift_sq"), "active_units": active_units(mu), "sigma2": model.sigma2_estimate(),
        "coverage": per_sampler["prior"], "sampler_coverage": per_sampler,
        "sampler_modes": sampler_modes(model, dataset, n=n_coverage, seed=seed, device=device),
        **family_metrics(model, x[:n_coverage], seed=seed, device=device),
    }


@torch.no_grad()
def lsr_gan_metrics(model, x: torch.Tensor, seed: int = 0, device: str | torch.device = "cpu",
                    draws: int = 8) -> dict[str, float]:
    """LSR-GAN measures on test images ``x (n, C, H, W)`` (seed 004 §2.2 and App. C), with
    the base VAE's decoder D measured on the same images beside the generator G:

    - ``sharpness``, ``base_sharpness``: mean :func:`explorer.image_metrics.sharpness` of
      G(μ(x)) and of the VAE reconstructions D(μ(x)) (004 reports 0.28 vs 0.17 on CIFAR-10);
      ``sharpness_ratio`` = their quotient; ``data_sharpness`` of x itself for scale;
    - ``recon_mse``, ``base_recon_mse``: per-image sum of squared errors on [0, 1] pixels of
      G(μ(x)) and D(μ(x)) against x (the units of ``test_mse``);
    - ``latent_recovery``: mean ||μ(G(z)) - z||² over ``len(x)`` prior samples z ~ N(0, I),
      summed over the base encoder's active units (Cov_x μ(x) > 0.01 on these test images);
      ``latent_recovery_all`` over all d units; ``active_units_base``;
    - ``imagination_variance``, ``base_imagination_variance``: for each image, ``draws``
      codes z ~ q(z|x) decoded by G (resp. D), the per-pixel variance across the draws summed
      over pixels, then the mean over images (004 App. C Table 1-2, "the variance among images
      generated by same latent representations").
    """
    model = model.to(device).eval()
    base = model.base
    gen = torch.Generator().manual_seed(seed)
    mu = batched(model.encode, x, device=device)
    g_rec = batched(model.decode, mu, device=device)
    d_rec = batched(base.decode, mu, device=device)
    z = torch.randn(len(x), model.latent_dim, generator=gen)
    z_back = batched(model.encode, batched(model.decode, z, device=device), device=device)
    active = mu.var(0) > 0.01
    err = (z_back - z).pow(2)
    codes = batched(lambda b: model.posterior_samples(b, draws, generator=gen), x).flatten(0, 1)  # CPU draws
    variance = {}
    for key, decoder in (("imagination_variance", model.decode), ("base_imagination_variance", base.decode)):
        imgs = batched(decoder, codes, device=device).view(len(x), draws, -1)
        variance[key] = float(imgs.var(1, unbiased=True).sum(1).mean())
    s_g, s_d = float(sharpness(g_rec).mean()), float(sharpness(d_rec).mean())
    return {
        "sharpness": s_g, "base_sharpness": s_d, "sharpness_ratio": s_g / s_d if s_d > 0 else None,
        "data_sharpness": float(sharpness(x).mean()),
        "recon_mse": float(squared_error(x, g_rec).mean()), "base_recon_mse": float(squared_error(x, d_rec).mean()),
        "latent_recovery": float(err[:, active].sum(1).mean()), "latent_recovery_all": float(err.sum(1).mean()),
        "active_units_base": int(active.sum()), **variance,
    }


# Extra metrics per family, merged into evaluate()'s result.
FAMILY_METRICS = {"lsr-gan": lsr_gan_metrics}


def _eval_batch(model: LatentModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
    d = drift(model, x)
    out = {"sse": squared_error(x, model.decode(d["mu"])), "drift_sq": d["drift_sq"], "mu": d["mu"]}
    if "drift_kl" in d:
        out["kl"], out["drift_kl"] = kl_std_normal(d["mu"], d["logvar"]), d["drift_kl"]
    return out


@torch.no_grad()
def app_arrays(model: LatentModel, dataset: str, n: int = N_APP, seed: int = 0, device: str | torch.device = "cpu",
               umap: bool = True) -> dict[str, torch.Tensor]:
    """Arrays the app shows without recomputation, for the first ``n`` test images.

    Returns a dict of float32/int64 tensors:
    ``test_mu (n, d)``, ``test_labels (n,)``, ``drift_mu (n, d)`` (z' of each test image),
    ``drift_sq (n,)``, ``drift_kl (n,)`` (Gaussian encoders only), and ``S (n, d)`` codes for each
    sampler S in ``model.samplers`` (``prior``, ``gmm-10``, ``sampler-net``, and ``gmm-100``, ``two-stage`` when an ex-post sidecar is attached); for each projection P in (pca, umap) and for identity when d = 2: ``P_test (n, 2)``,
    ``P_drift (n, 2)`` and ``P_S (n, 2)`` for each sampler; and the PCA
    map ``pca_mean (d,)``, ``pca_components (2, d)``. UMAP is fitted on ``test_mu`` and the
    prior samples and z' are placed with ``transform``.
    """
    model = model.to(device).eval()
    x, y = load_dataset(dataset, "test", limit=n)
    d = batched(lambda b: drift(model, b), x, device=device)
    mu, mu2 = d["mu"], d["mu2"]
    samples = {}
    for s in model.samplers:
        gen = torch.Generator().manual_seed(seed)
        samples[s] = model.sample(n, s, generator=gen).cpu()
    out = {"test_mu": mu, "test_labels": y.clone(), "drift_mu": mu2, "drift_sq": d["drift_sq"], **samples}
    if "drift_kl" in d:
        out["drift_kl"] = d["drift_kl"]
    methods = ["pca"] + (["umap"] if umap else []) + (["identity"] if model.latent_dim == 2 else [])
    for method in methods:
        proj = Projection(method, random_state=seed)
        out[f"{method}_test"] = torch.from_numpy(proj.fit_transform(mu))
        for s, codes in samples.items():
            out[f"{method}_{s}"] = torch.from_numpy(proj.transform(codes))
        out[f"{method}_drift"] = torch.from_numpy(proj.transform(mu2))
        if method == "pca":
            mean, comps = proj.linear_map()
            out["pca_mean"], out["pca_components"] = torch.from_numpy(mean), torch.from_numpy(comps)
    return {k: v.float() if v.is_floating_point() else v for k, v in out.items()}


@torch.no_grad()
def posterior_draws(model: LatentModel, x: torch.Tensor, seed: int = 0,
                    device: str | torch.device = "cpu") -> torch.Tensor:
    """One code z ~ q(z|x) per image: ``(N, C, H, W)`` -> ``(N, d)`` float32 on the CPU, reproducible
    for a given ``seed``. Together they are a sample of the aggregate posterior q(z) = E_x q(z|x),
    the distribution the seeds' prior-hole argument is about (000 §V.B, 002 §3), where the encoder
    means are not: an inactive unit's means sit near 0 while its posteriors are near N(0, 1).
    Gaussian encoders: μ + σ ε; LDC-VAE: E(x, ε) for one noise draw ε; deterministic encoders
    (AE, RAE, WAE): the codes themselves."""
    model = model.to(device).eval()
    gen = torch.Generator().manual_seed(seed)
    return batched(lambda b: model.posterior_samples(b, 1, generator=gen)[:, 0], x, device=device).float()


@torch.no_grad()
def train_codes(model, dataset: str, limit: int | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
    """Encoder means of the training split: ``(N, d)`` float32 on the CPU (N = 60k, or ``limit``);
    what ``gmm-10``, ``gmm-100`` and ``two-stage`` are fitted on."""
    x, _ = load_dataset(dataset, "train", limit=limit)
    model.to(device).eval()
    return batched(model.encode, x, device=device)


@torch.no_grad()
def fit_gmm(model: LatentModel, dataset: str, limit: int | None = None, seed: int = 0,
            device: str | torch.device = "cpu") -> None:
    """Fit the model's ``gmm-10`` sampler (10 components, stored in the checkpoint as ``gmm.*``) on
    encoder means of the training split. ``gmm-100`` and ``two-stage`` are fitted by :mod:`explorer.expost`."""
    model.gmm.fit(train_codes(model, dataset, limit=limit, device=device), seed=seed)


N_MONITOR = 2000  # samples per sampler that epoch_monitor decodes after each epoch


def epoch_monitor(dataset: str, device: str | torch.device = "cpu", n_samples: int = N_MONITOR,
                  checkpoints: str | Path = "checkpoints", memorisation: bool = True, limit: int | None = None):
    """The per-epoch measurements of ``train.py`` (:func:`explorer.training.fit`'s ``monitor``).

    Returns ``monitor(model) -> {name: float}`` with

    - ``test_<term>``: the mean of every term of ``model.eval_terms`` over the test split (the
      first ``limit`` images when given), in batches of 1,000; so ``test_loss`` is the held-out
      objective (nats per image for the VAE family);
    - for each sampler S in ``model.monitor_samplers`` (``prior``; LDC-VAE's ``sampler-net``),
      on ``n_samples`` decoded codes, when the dataset's classifier is shipped: ``class_entropy_S``
      and ``min_class_share_S`` (:mod:`explorer.metrics.modes`), ``fd_S``, the Fréchet distance in
      the classifier's features against the test split (not the table's training-set reference:
      it tracks progress, it is not a result); for ``sampler-net`` also ``coverage_S`` of the
      encoder means of ``n_samples`` test images (k = 5) and, with ``memorisation``,
      ``nn_median_S``, the median squared L2 distance to the nearest training image.

    Raises:
        DatasetNotAvailable: the dataset is not installed.
    """
    x_test, _ = load_dataset(dataset, "test", limit=limit)
    n_classes = len(dataset_info(dataset).classes)
    classifier = shipped_classifier(dataset, checkpoints)  # None: test terms only
    if classifier is not None:
        classifier.to(device)
    state = {}

    def reference():
        if "ref" not in state:
            state["ref"] = feature_statistics(batched(classifier.features, x_test, device=device).double().numpy())
            state["train"] = load_dataset(dataset, "train", limit=limit)[0] if memorisation else None
        return state["ref"]

    def monitor(model: LatentModel) -> dict[str, float]:
        sums: dict[str, float] = {}
        for i in range(0, len(x_test), 1000):
            xb = x_test[i:i + 1000].to(device)
            for k, v in model.eval_terms(xb).items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(xb)
        out = {f"test_{k}": v / len(x_test) for k, v in sums.items()}
        if classifier is None:
            return out
        ref = reference()
        for s in model.monitor_samplers:
            if s not in model.samplers:
                continue
            z = model.sample(n_samples, s, generator=torch.Generator().manual_seed(0)).to(device)
            images = batched(model.decode, z, device=device)
            feats = batched(classifier.features, images, device=device)
            labels = classifier.head(feats.to(device)).argmax(1).cpu()
            stats = mode_stats(class_histogram(labels, n_classes))
            out[f"class_entropy_{s}"] = stats["class_entropy"]
            out[f"min_class_share_{s}"] = stats["min_class_share"]
            out[f"fd_{s}"] = frechet_distance(*feature_statistics(feats.double().numpy()), *ref)
            if s == "sampler-net":
                mu = batched(model.encode, x_test[:n_samples], device=device)
                out[f"coverage_{s}"] = prdc(mu, z.cpu(), k=5)["coverage"]
                if memorisation:
                    out[f"nn_median_{s}"] = float(nearest_sq_distances(images, state["train"]).median())
        return out

    return monitor


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="*", type=Path, help="checkpoint files (.safetensors): latent metrics per model")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON object per checkpoint")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--device", default="cpu", help="auto, cpu or cuda")
    table = p.add_argument_group("image-space table (FID protocol), instead of paths")
    table.add_argument("--dataset", help="run the rec/sample/interp protocol on every shipped model of this dataset")
    table.add_argument("--backbone", default="classifier", help="inception (standard FID) or classifier")
    table.add_argument("--n", "--n-images", dest="n", type=int, default=10_000,
                       help="images per set (default 10000); under torchrun write --n-images (torchrun reads a bare "
                            "--n as an abbreviation of its own options)")
    table.add_argument("--n-ref", type=int, help="reference: the first N training images (default all)")
    table.add_argument("--prdc-n", type=int, default=5000, help="features per side for precision/recall (default 5000)")
    table.add_argument("--models", nargs="+", help="only these checkpoint names (default all in the folder)")
    table.add_argument("--checkpoints", type=Path, default=Path("checkpoints"), help="checkpoint root folder")
    table.add_argument("--seed", type=int, default=0)
    table.add_argument("--out", type=Path, help="write the table as JSON here (e.g. results/mnist-classifier.json)")
    table.add_argument("--update", action="store_true",
                       help="with --out and --models: recompute only these models' rows and keep the other rows of "
                            "the existing --out table (same backbone, n, reference, seed); rows of models whose checkpoint "
                            "is no longer in the folder are dropped")
    args = p.parse_args(argv)
    if args.dataset:
        if args.update and not (args.out and args.models):
            p.error("--update needs --out (the table to update) and --models (the rows to recompute)")
        return table_main(args, argv)
    if not args.paths:
        p.error("give checkpoint paths, or --dataset for the image-space table")
    rc = 0
    if args.markdown:
        print("| dataset | model | test MSE | KL | drift KL | drift ‖z′−z‖² | AU | σx² | prior coverage | prior density "
              "| MMD² | prior class entropy | gmm-10 class entropy | gmm-10 nearest-train ratio |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in args.paths:
        if is_sidecar(path):  # ex-post sampler sidecars beside the checkpoints (globs catch them)
            continue
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            rc = 1
            continue
        meta = ckpt.meta
        res = evaluate(ckpt.model, meta.get("dataset", "mnist"), name=meta.get("name", path.stem), device=args.device)
        c = res["coverage"]
        f = lambda key, spec: "-" if res[key] is None else format(res[key], spec)  # noqa: E731
        if args.json:
            print(json.dumps(res), flush=True)
        elif args.markdown:
            q = res["sampler_modes"]
            h = lambda s, key="class_entropy": format(q[s][key], ".3f") if s in q else "-"  # noqa: E731
            print(f"| {res['dataset']} | {res['name']} | {f('test_mse', '.2f')} | {f('kl', '.2f')} | "
                  f"{f('drift_kl', '.3f')} | {f('drift_sq', '.3f')} | {res['active_units']} | {f('sigma2', '.4g')} | "
                  f"{c['coverage']:.3f} | {c['density']:.3f} | {c['mmd']:.4f} | {h('prior')} | {h('gmm-10')} | "
                  f"{h('gmm-10', 'nn_ratio')} |", flush=True)
        else:
            print(f"{res['dataset']:>13} {res['name']:<16} mse {f('test_mse', '7.2f')}  kl {f('kl', '7.2f')}  "
                  f"drift_kl {f('drift_kl', '7.3f')}  drift_sq {f('drift_sq', '7.3f')}  AU {res['active_units']:2d}  "
                  f"sigma2 {f('sigma2', '>8.4g')}  coverage {c['coverage']:.3f}  density {c['density']:.3f}  "
                  f"mmd {c['mmd']:.4f}", flush=True)
    return rc


def table_main(args, argv) -> int:
    """``--dataset`` mode: the image-space protocol table (explorer.metrics.protocol) over shipped models.
    Run by ``torchrun --nproc_per_node N -m explorer.evaluate --dataset D ...``, the feature extraction
    is sharded over the N ranks and rank 0 writes the table."""
    try:
        old = read_table(args.out) if args.update else None
    except (OSError, ValueError) as e:
        print(f"error: --update: cannot read the existing table {args.out}: {e}", file=sys.stderr)
        return 2
    try:
        _, device = distributed.init(resolve_device(args.device))  # under torchrun: shard the features
        paths = list_models(args.checkpoints, args.dataset)
        names = args.models or list(paths)
        missing = sorted(set(names) - set(paths))
        if missing:
            raise ValueError(f"no checkpoints {missing} in {args.checkpoints / args.dataset}; there are {sorted(paths)}")
        backbone = get_backbone(args.backbone, args.dataset, device, args.checkpoints)
        models = {name: load(paths[name]) for name in names}
        table = evaluate_table(args.dataset, backbone, models, n=args.n, n_ref=args.n_ref, prdc_n=args.prdc_n,
                               seed=args.seed, device=device,
                               classifier=shipped_classifier(args.dataset, args.checkpoints))
    except (ValueError, CheckpointError, BackboneUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        distributed.shutdown()
    if table is None:  # not rank 0: rank 0 writes the table
        return 0
    table["command"] = (distributed.launch_command("-m explorer.evaluate") + " "
                        + shlex.join(sys.argv[1:] if argv is None else argv))
    table["checkpoints"] = {name: file_sha256(paths[name]) for name in names}  # which file each row measured
    if old is not None:
        try:
            table = merge_tables(old, table, shipped=paths)  # rows of removed checkpoints go
        except ValueError as e:
            print(f"error: --update: {e}", file=sys.stderr)
            return 2
    if args.out:
        write_table(table, args.out)
        print(f"wrote {args.out} ({len(table['rows'])} rows)")
    else:
        print(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
