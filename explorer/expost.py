"""Ex-post samplers for trained models: fit them on the training codes, measure them, write the
sidecar; and the CLI.

"Ex-post density estimation" (Ghosh et al. 2020, §4; AR-ELBO, seed 002 §4-5 and Tables 3-4) fits
a density to the codes of the training set after the model is trained and samples new codes
from it instead of from the prior N(0, I). Three such samplers exist in the explorer:

- ``gmm-10``: 10-component GMM, fitted by ``train.py`` and stored *inside* the checkpoint;
- ``gmm-100``: the same estimator with K = 100 full-covariance components (Table 3's GMM-100
  column), stored in the sidecar;
- ``two-stage``: the second-stage VAE of Dai & Wipf (2019), §4
  (:mod:`explorer.samplers.two_stage`), stored in the sidecar.

Both are fitted on the encoder means ``model.encode(x)`` of the whole training split (for
LSR-GAN the base VAE's encoder; for LDC-VAE the mean of its implicit encoder), as ``gmm-10``
(:func:`explorer.evaluate.fit_gmm`) is. Reading: Dai & Wipf's code trains its second stage on
fresh draws z ~ q(z|x) each epoch instead; the means serve every model here, autoencoders
without a posterior variance included, and match what the GMMs see. A GMM-10 fitted on one draw
z ~ q(z|x) per image instead changes no model's verdict (docs/readings.md, "Ex-post GMM";
``bench/gmm_codes.py``).

The models live in :mod:`explorer.samplers`, the file format in
:mod:`explorer.samplers.sidecar`; their names are re-exported here.

CLI::

    python -m explorer.expost checkpoints/mnist/*.safetensors [--seed 0] [--device auto]

fits both samplers for every model checkpoint given (sidecar paths are skipped) and writes its
sidecar atomically, printing progress and the time per model.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
from pathlib import Path

import torch

from .checkpoint import CheckpointError, load_checkpoint
from .compute import N_APP, resolve_device
from .evaluate import sampler_coverage, sampler_modes, train_codes
from .io import file_sha256, versions
from .layout import model_name
from .samplers.expost import GMM_COMPONENTS, SAMPLERS, ExPostSamplers, fit_expost
from .samplers.sidecar import (FORMAT, SUFFIX, SidecarError, attach_sidecar, is_sidecar, load_sidecar,
                               model_path_of, read_sidecar_meta, refit_command, save_sidecar, sidecar_path)
from .samplers.two_stage import SecondStageVAE, TwoStageConfig

__all__ = ["FORMAT", "SUFFIX", "SAMPLERS", "GMM_COMPONENTS", "ExPostSamplers", "SecondStageVAE", "TwoStageConfig",
           "SidecarError", "attach_sidecar", "expost_coverage", "expost_modes", "fit_checkpoint", "fit_expost",
           "is_sidecar", "load_sidecar", "main", "model_path_of", "read_sidecar_meta", "refit_command",
           "save_sidecar", "sidecar_path", "train_codes"]

EXPOST_VERSIONS = ("torch", "scikit-learn", "safetensors", "numpy")


def _with_expost(model, ex: ExPostSamplers, measure):
    """``measure()`` with ``ex`` attached to ``model`` for its duration (the model's own sidecar,
    if any, is put back afterwards)."""
    before = model.expost
    model.attach_expost(ex)
    try:
        return measure()
    finally:
        model.attach_expost(before)


@torch.no_grad()
def expost_coverage(model, ex: ExPostSamplers, dataset: str, seed: int = 0,
                    device: str | torch.device = "cpu") -> dict[str, dict]:
    """:func:`explorer.evaluate.sampler_coverage` of ``N_APP`` codes of each ex-post sampler
    against the encoder means of the first ``N_APP`` test images: ``{sampler: {precision,
    recall, density, coverage, mmd}}``."""
    return _with_expost(model, ex, lambda: sampler_coverage(model, dataset, n=N_APP, seed=seed, device=device,
                                                            samplers=ex.samplers))


@torch.no_grad()
def expost_modes(model, ex: ExPostSamplers, dataset: str, seed: int = 0,
                 device: str | torch.device = "cpu") -> dict[str, dict]:
    """:func:`explorer.evaluate.sampler_modes` (class histogram, class entropy, memorisation) of
    ``N_APP`` decoded codes of each ex-post sampler; ``{}`` without the dataset's classifier."""
    return _with_expost(model, ex, lambda: sampler_modes(model, dataset, n=N_APP, seed=seed, device=device,
                                                         samplers=ex.samplers))


def fit_checkpoint(path: str | Path, seed: int = 0, device: str | torch.device = "cpu", limit: int | None = None,
                   two_stage: TwoStageConfig | None = None, command: str = "", progress: bool = True,
                   log=print) -> Path:
    """Fit both ex-post samplers for the model checkpoint at ``path`` and write its sidecar.

    Raises:
        explorer.checkpoint.CheckpointError: the model cannot be loaded, or its file changed
            while fitting (nothing is written then).
    """
    path = Path(path)
    dev = resolve_device(device) if isinstance(device, str) else device
    t0 = time.time()
    digest = file_sha256(path) if path.is_file() else ""
    ckpt = load_checkpoint(path, expost=False)
    model, meta = ckpt.model, ckpt.meta
    dataset = meta.get("dataset")
    if not dataset:
        raise CheckpointError(f"{path}: its metadata names no dataset; cannot find its training codes")
    name = meta.get("name", model_name(path))
    codes = train_codes(model, dataset, limit=limit, device=dev)
    t_enc = time.time() - t0
    log(f"[{name}] {len(codes)} training codes (d = {codes.shape[1]}) of {dataset} encoded in {t_enc:.1f} s; "
        f"fitting gmm-100 and two-stage on {dev}")
    ex, info = fit_expost(codes, seed=seed, device=dev, two_stage=two_stage, progress=progress, desc=f"[{name}] two-stage")
    coverage = expost_coverage(model, ex, dataset, seed=seed, device=dev)
    modes = expost_modes(model, ex, dataset, seed=seed, device=dev)
    if file_sha256(path) != digest:
        raise CheckpointError(f"{path}: the file changed while its ex-post samplers were fitted; nothing written, "
                              f"rerun `{refit_command(path)}`")
    wall = time.time() - t0
    sidecar_meta = {
        "checkpoint": path.name, "checkpoint_sha256": digest, "family": model.family, "name": name,
        "latent_dim": model.latent_dim, "dataset": dataset, "split": "train", "n_codes": len(codes),
        "codes": "encoder means model.encode(x) of the training split", "seed": seed,
        "command": command or refit_command(path), "device": str(dev),
        "threads": torch.get_num_threads(), "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "encode_seconds": round(t_enc, 2), "wall_seconds": round(wall, 2), "versions": versions(EXPOST_VERSIONS), **info,
        "sampler_coverage": coverage, "sampler_modes": modes,
    }
    out = save_sidecar(ex, path, sidecar_meta)
    for sampler, c in coverage.items():
        log(f"[{name}] {sampler}: coverage {c['coverage']:.3f}, density {c['density']:.3f}, precision "
            f"{c['precision']:.3f}, recall {c['recall']:.3f}, MMD² {c['mmd']:.4f} (against test encoder means)")
    h = info["two_stage"]["history"][-1]
    log(f"[{name}] wrote {out} ({out.stat().st_size / 1e3:.0f} kB) in {wall:.1f} s (encode {t_enc:.1f} s, gmm-100 "
        f"{info['gmm_seconds']:.1f} s, {info['gmm_100']['n_iter']} EM iterations, converged "
        f"{info['gmm_100']['converged']}; two-stage {info['two_stage_seconds']:.1f} s, final loss {h['loss']:.3f} "
        f"nats, KL {h['kl']:.2f}, gamma {h['gamma']:.3g})")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer.expost",
                                description="Fit the ex-post samplers gmm-100 and two-stage of model checkpoints "
                                            "and write <name>.expost.safetensors beside each.")
    p.add_argument("paths", nargs="+", type=Path, help="model checkpoints (.safetensors); sidecars are skipped")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (for encoding and the two-stage VAE)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (for tests)")
    p.add_argument("--epochs", type=int, default=None, help=f"two-stage epochs (default {TwoStageConfig.epochs})")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    command = "python -m explorer.expost " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    cfg = TwoStageConfig(**({"epochs": args.epochs} if args.epochs else {}))
    paths = [q for q in args.paths if not is_sidecar(q)]
    for q in args.paths:
        if is_sidecar(q):
            print(f"skipping {q}: an ex-post sidecar, not a model checkpoint", flush=True)
    rc, t0 = 0, time.time()
    for i, path in enumerate(paths, 1):
        print(f"({i}/{len(paths)}) {path}", flush=True)
        try:
            fit_checkpoint(path, seed=args.seed, device=args.device, limit=args.limit, two_stage=cfg,
                           command=command, progress=not args.quiet, log=lambda s: print(s, flush=True))
        except (CheckpointError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            rc = 1
    print(f"done: {len(paths)} checkpoint(s) in {time.time() - t0:.1f} s", flush=True)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
