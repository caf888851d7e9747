"""Train Latent Explorer models and write self-describing checkpoints.

    python train.py --model vae --dataset mnist --epochs 1 --limit 2000 --out /tmp/x
    python train.py --model ar-elbo --variance iso-d --dataset fashion-mnist
    python train.py --model lsr-gan --dataset mnist --vae checkpoints/mnist/ar-elbo-iso-i.safetensors --lambda 1
    python train.py --all --dataset mnist            # the whole zoo for a dataset
    python train.py --model ldc-sampler --dataset mnist --from runs/zoo/mnist/ldc-vae.safetensors --out runs/refit
    torchrun --nproc_per_node 2 train.py --model vae --dataset mnist   # DDP, see README "Scaling out"

Writes ``OUT/<dataset>/<name>.safetensors`` (see explorer/checkpoint.py). This script only
parses arguments and calls the library.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from explorer import distributed, training
from explorer.checkpoint import CheckpointError, load, save
from explorer.classifier import Classifier, ClassifierConfig, save_classifier
from explorer.compute import resolve_device
from explorer.data import DATASETS, DatasetNotAvailable, dataset_info, load_dataset, set_data_root
from explorer.evaluate import app_arrays, epoch_monitor, evaluate, fit_gmm, posterior_draws
from explorer.io import check_writable_folder, file_sha256, versions
from explorer.layout import classifier_path, model_path, name_problem, resume_path, sidecar_path
from explorer.losses import VARIANCES
from explorer.models import MODELS, ZOO, model_class
from explorer.models.ar_elbo import DIAG_D_VARIANCES
from explorer.models.ldc_refit import SamplerRefitConfig, check_refittable, refit_sampler
from explorer.models.ldc_vae import KDE_BANDWIDTHS, SAMPLER_TARGETS
from explorer.models.lsr_gan import LATENT_TERMS
from explorer.nets import PROFILES
from explorer.schema import MAX_LATENT_DIM
from explorer.trainers import trainer_for
from explorer.training import TrainConfig, TrainingDiverged, remove_stale_temp_files

# CLI option -> model config field; only options the user gave are passed on.
CONFIG_OPTIONS = {"variance": "variance", "beta": "beta", "alpha": "alpha", "latent_dim": "latent_dim",
                  "profile": "profile", "particles": "particles", "sampler_particles": "sampler_particles",
                  "sampler_target": "sampler_target", "sampler_kernel_scale": "sampler_kernel_scale",
                  "sampler_start": "sampler_start", "sampler_kde_bandwidth": "sampler_kde_bandwidth",
                  "vae": "base_path", "lam": "lam", "latent_term": "latent_term", "diag_d_variance": "diag_d_variance"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", choices=sorted(set(MODELS) | set(ZOO) | set(OTHER_MODELS)),
                      help="model family, or a zoo name (its family and settings, e.g. rae-gp), or 'classifier' "
                           "(the CNN behind the classifier Fréchet distance of explorer.metrics)")
    what.add_argument("--all", action="store_true", help=f"train the whole zoo: {', '.join(ZOO)}")
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    p.add_argument("--name", help="checkpoint name (default: derived from the config, e.g. ar-elbo-iso-d)")
    p.add_argument("--variance", choices=VARIANCES, help="AR-ELBO variance parameterization (seed 002 Table 2)")
    p.add_argument("--diag-d-variance", choices=DIAG_D_VARIANCES,
                   help="ar-elbo diag-d: how σᵢ²(z) is estimated: pooled with the Diag-I variance (default), leaving "
                        "out the image it weighs, or in-sample (see explorer.models.ar_elbo)")
    p.add_argument("--beta", type=float, help="KL weight (vae family)")
    p.add_argument("--alpha", type=float, help="consistency-loss weight (consistency-vae)")
    p.add_argument("--particles", type=int, help="ldc-vae: SVGD particles (encoder noise draws) per image, M (default 8)")
    p.add_argument("--sampler-particles", type=int,
                   help="ldc-vae: particles in the sampler net's SVGD set per step (default: the batch size)")
    p.add_argument("--sampler-target", choices=SAMPLER_TARGETS,
                   help="ldc-vae: what the sampler net's SVGD targets (default encoder-kde; see explorer.models.ldc_vae)")
    p.add_argument("--sampler-start", type=int,
                   help="ldc-vae: training step at which the sampler net is seeded and starts training (default 18000)")
    p.add_argument("--sampler-kde-bandwidth", choices=KDE_BANDWIDTHS,
                   help="ldc-vae: the sampler's KDE target width: scott (default) or cv (copies; reading 8)")
    p.add_argument("--sampler-kernel-scale", type=float,
                   help="ldc-vae: multiplier on the sampler's median-heuristic SVGD bandwidth (default 4; 1 = the paper's)")
    p.add_argument("--from", dest="source", type=Path, metavar="CHECKPOINT",
                   help="ldc-sampler: the trained ldc-vae checkpoint whose sampler net is refitted (reading 9)")
    p.add_argument("--steps", type=int,
                   help=f"ldc-sampler: SVGD steps of the refit (default {SamplerRefitConfig.steps})")
    p.add_argument("--gmm-components", type=int,
                   help=f"ldc-sampler: components of the target GMM (default {SamplerRefitConfig.components})")
    p.add_argument("--vae", metavar="CHECKPOINT",
                   help="lsr-gan: the frozen base VAE (default: ar-elbo-iso-i next to the output file)")
    p.add_argument("--lambda", dest="lam", type=float,
                   help="lsr-gan: weight λ of -log q(z|G(z)) in the generator loss (seed 004 eq. 4; default 5e-4, reading 7); "
                        "rae: weight of the decoder regularizer; wae-mmd: weight of the MMD penalty (default 10)")
    p.add_argument("--latent-term", choices=LATENT_TERMS,
                   help="lsr-gan: -log q(z|G(z)) with the encoder variance's gradient stopped (default "
                        "detached-variance) or the literal nll (see explorer.models.lsr_gan)")
    p.add_argument("--latent-dim", type=int, help="d (default 16)")
    p.add_argument("--profile", choices=sorted(PROFILES), help="architecture profile (default small)")
    p.add_argument("--epochs", type=int, default=20, help="epochs (the minimum, with --max-epochs)")
    p.add_argument("--max-epochs", type=int,
                   help="go on past --epochs until the held-out loss improves by less than --tol over the last "
                        "3 epochs, at most this many epochs (see explorer.training)")
    p.add_argument("--tol", type=float, default=0.01, help="relative improvement that counts as converged (0.01)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, help="learning rate (default: 1e-3; lsr-gan 2e-4, seed 004 App. D)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="train on the first N images only (smoke runs)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its resume file")
    p.add_argument("--no-umap", action="store_true", help="skip the UMAP projection (faster smoke runs)")
    p.add_argument("--out", type=Path, default=Path("checkpoints"))
    p.add_argument("--data-root", type=Path,
                   help="cifar10/celeba: the folder holding cifar-10-batches-py/ or celeba/ (torchvision's layout; "
                        "default $LATENT_EXPLORER_DATA, else ~/.cache/latent-explorer)")
    p.add_argument("--download", action="store_true",
                   help="cifar10/celeba: let torchvision download a missing dataset into the data root (off: nothing "
                        "is downloaded)")
    args = p.parse_args(argv)
    args.command = distributed.launch_command("train.py") + " " + shlex.join(sys.argv[1:] if argv is None else argv)
    return args


def git_commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).parent).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).parent).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_description(device: torch.device) -> str:
    world = distributed.world_size()
    ranks = f" x {world} ranks (torchrun, {distributed.backend_for(device)})" if world > 1 else ""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}){ranks}"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads){ranks}"


def say(*args, **kwargs) -> None:
    """print on rank 0 only (every rank of a torchrun job runs this script)."""
    if distributed.rank() == 0:
        print(*args, **kwargs)


def prepare_files(name: str, out: Path, resume: Path, resume_wanted: bool, *extra: Path) -> bool:
    """Rank 0 clears what a fresh run must not see (the resume file without --resume, temp files of
    an interrupted write) and decides whether there is anything to do; every rank gets the answer
    (False: ``out`` is complete and there is nothing to resume)."""
    go = True
    if distributed.rank() == 0:
        if resume_wanted and out.is_file() and not resume.is_file():
            print(f"[{name}] {out} is complete; nothing to resume")
            go = False
        else:
            if not resume_wanted:
                resume.unlink(missing_ok=True)
            for tmp in remove_stale_temp_files(out, resume, *extra):
                print(f"[{name}] removed {tmp}, left by an interrupted write")
    return distributed.broadcast_object(go)


def run_meta(args: argparse.Namespace, name: str, family: str, device: torch.device, started: str, t0: float,
             train_seconds: float, tcfg: TrainConfig, history: list[dict], metrics: dict) -> dict:
    """The provenance every checkpoint records: command, seed, device, times, commit, versions, metrics."""
    return {
        "name": name, "dataset": args.dataset, "family": family,
        "command": args.command, "seed": args.seed,
        "device": device_description(device), "started_at": started,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "train_seconds": round(train_seconds, 1), "wall_seconds": round(time.time() - t0, 1),
        "git_commit": git_commit(), "versions": versions(), "train": tcfg.to_dict(),
        "metrics": metrics, "history": history,
    }


def run_classifier(args: argparse.Namespace) -> dict:
    """Train the dataset's feature classifier (explorer.classifier) and write it under OUT/<dataset>/backbones/."""
    info = dataset_info(args.dataset)
    out = classifier_path(args.dataset, args.out)
    resume = resume_path(out)
    prepare_files("classifier", out, resume, args.resume)  # a complete classifier is retrained, as before
    device = args.device_resolved
    tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr or 1e-3, seed=args.seed,
                       limit=args.limit)
    torch.manual_seed(args.seed)
    model = Classifier(ClassifierConfig(image_shape=info.shape, n_classes=len(info.classes)))
    images, labels = load_dataset(args.dataset, "train", limit=args.limit)
    say(f"[classifier] {model.config.to_dict()} on {args.dataset} ({len(images)} images), {device_description(device)}")
    t0, started = time.time(), dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    history = training.train(model, (images, labels), tcfg, device=device, resume_path=resume,
                             log=lambda s: print(f"[classifier] {s}", flush=True))
    train_seconds = time.time() - t0
    if distributed.rank() != 0:  # rank 0 measures and writes
        return {}
    x_test, y_test = load_dataset(args.dataset, "test")
    metrics = {"test_accuracy": model.accuracy(x_test, y_test), "n_test": len(x_test)}
    meta = run_meta(args, "classifier", "classifier", device, started, t0, train_seconds, tcfg, history, metrics)
    save_classifier(model.cpu(), out, meta)
    resume.unlink(missing_ok=True)
    print(f"[classifier] wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {meta['wall_seconds']} s: "
          f"test accuracy {metrics['test_accuracy']:.4f} on {len(x_test)} images", flush=True)
    return metrics


def refit_config(args: argparse.Namespace) -> SamplerRefitConfig:
    """The ldc-sampler options given, over :class:`SamplerRefitConfig`'s defaults (ValueError if out of range)."""
    options = {"steps": args.steps, "particles": args.sampler_particles, "kernel_scale": args.sampler_kernel_scale,
               "lr": args.lr, "components": args.gmm_components}
    return SamplerRefitConfig(**{k: v for k, v in options.items() if v is not None})


def run_ldc_sampler(args: argparse.Namespace) -> dict:
    """Reading 9 of LDC-VAE: refit the sampler net of the ``--from`` checkpoint on its frozen encoder
    (explorer.models.ldc_refit) and write the model, its metrics and app arrays, with the refit's
    record under ``meta["sampler_refit"]``, to OUT/<dataset>/<name> (default: the source's name).

    Raises:
        ValueError: no ``--from``, a source that is not this dataset's ldc-vae with sampler
            components, settings out of range, or an output path that is the source itself.
    """
    if args.source is None:
        raise ValueError("--model ldc-sampler needs --from CHECKPOINT, a trained ldc-vae checkpoint")
    cfg = refit_config(args)
    model = load(args.source, expost=False)
    check_refittable(model, cfg)
    source_meta = dict(model.meta)
    if source_meta.get("dataset") not in (None, args.dataset):
        raise ValueError(f"--from {args.source} was trained on {source_meta['dataset']!r}, not --dataset {args.dataset!r}")
    name = args.name or source_meta.get("name") or "ldc-vae"
    out = model_path(args.out, args.dataset, name)
    if out.resolve() == Path(args.source).resolve():
        raise ValueError(f"--out would overwrite --from {args.source}; write the refitted model elsewhere")
    device = args.device_resolved
    say(f"[{name}] sampler refit {cfg.to_dict()} of {args.source} on {args.dataset}, {device_description(device)}")
    started, t0 = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), time.time()
    images, _ = load_dataset(args.dataset, "train", limit=args.limit)
    codes = posterior_draws(model, images, seed=args.seed, device=device)
    record = refit_sampler(model.to(device), codes.to(device), cfg, seed=args.seed,
                           log=lambda s: print(f"[{name}] {s}", flush=True))
    metrics = evaluate(model, args.dataset, name=name, device=device, seed=args.seed)
    arrays = app_arrays(model, args.dataset, seed=args.seed, device=device, umap=not args.no_umap)
    record.update(command=args.command, source=str(args.source), source_sha256=file_sha256(args.source),
                  started_at=started, git_commit=git_commit(),
                  device=device_description(device), wall_seconds=round(time.time() - t0, 1),
                  finished_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    meta = {**source_meta, "name": name, "metrics": metrics, "sampler_refit": record}
    save(model.cpu(), out, meta=meta, arrays=arrays)
    print(f"[{name}] wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {record['wall_seconds']} s", flush=True)
    return metrics


OTHER_MODELS = {"classifier": run_classifier,  # --model names that are not latent models
                "ldc-sampler": run_ldc_sampler}


def classifier_root(args: argparse.Namespace) -> Path:
    """The checkpoint root whose ``<dataset>/backbones/`` holds the classifier for per-epoch
    measurements: ``--out`` when it has one, else the shipped ``checkpoints/``."""
    if classifier_path(args.dataset, args.out).is_file():
        return args.out
    return Path(__file__).resolve().parent / "checkpoints"


def run_one(family: str, overrides: dict, args: argparse.Namespace, name: str | None = None) -> dict | None:
    """Train one model, evaluate it and write its checkpoint. Returns the metrics (None if skipped)."""
    cls = model_class(family)
    info = dataset_info(args.dataset)
    config = cls.config_class.from_dict({**overrides, "image_shape": info.shape})
    name = name or args.name or config.default_name()
    out = model_path(args.out, args.dataset, name)
    resume = resume_path(out)
    if not prepare_files(name, out, resume, args.resume, sidecar_path(out)):
        return None
    device = args.device_resolved
    trainer = trainer_for(cls)
    torch.manual_seed(args.seed)
    model = cls.from_config(config, path=out, load=load)
    tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr or trainer.default_lr,
                       seed=args.seed, limit=args.limit, max_epochs=args.max_epochs, tol=args.tol,
                       monitor=model.monitor_key)
    images, _ = load_dataset(args.dataset, "train", limit=args.limit)
    model.check_schedule(math.ceil(len(images) / tcfg.batch_size) * tcfg.epochs)  # the steps every run makes
    say(f"[{name}] {family} {config.to_dict()} on {args.dataset} ({len(images)} images), {device_description(device)}")
    t0 = time.time()
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    if distributed.rank() == 0:
        monitor = epoch_monitor(args.dataset, device=device, checkpoints=classifier_root(args), limit=args.limit)
    else:  # only rank 0 measures (explorer.training.fit sends its values to the others)
        monitor = _no_monitor
    history = trainer.fit(model, images, tcfg, device=device, resume_path=resume, monitor=monitor,
                          log=lambda s: print(f"[{name}] {s}", flush=True))
    train_seconds = time.time() - t0
    if distributed.rank() != 0:  # rank 0 evaluates and writes the checkpoint
        return None
    fit_gmm(model, args.dataset, limit=args.limit, seed=args.seed, device=device)
    metrics = evaluate(model, args.dataset, name=name, device=device, seed=args.seed)
    arrays = app_arrays(model, args.dataset, seed=args.seed, device=device, umap=not args.no_umap)
    meta = run_meta(args, name, family, device, started, t0, train_seconds, tcfg, history, metrics)
    meta["stop_reason"] = getattr(model, "stop_reason", None)
    save(model.cpu(), out, meta=meta, arrays=arrays)
    resume.unlink(missing_ok=True)
    shown = " ".join(f"{k} {metrics[k]:.3f}" for k in ("test_mse", "kl", "drift_kl", "drift_sq")
                     if metrics.get(k) is not None)
    print(f"[{name}] wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {meta['wall_seconds']} s: "
          f"{shown} AU {metrics['active_units']}", flush=True)
    return metrics


def _no_monitor(model) -> dict:
    return {}


RUN_BYTES = 64 * 2**20  # free space a run needs in --out: checkpoint (~3 MB), resume file, temp copies, sidecar


def check_args(args: argparse.Namespace) -> str | None:
    """Why these arguments cannot run, in one line, or None: a model name that is not a safe slug
    (explorer.layout.NAME_PATTERN), numbers out of range (TrainConfig's checks: epochs, batch size,
    learning rate, tolerance, seed in [0, 2**32), limit), a latent size the checkpoint header
    would refuse (explorer.schema.MAX_LATENT_DIM), a global batch that does not split over
    torchrun's ranks, or an --out folder that cannot be written or lacks space."""
    if args.name is not None and (problem := name_problem(args.name)):
        return f"--name: {problem}"
    if (args.source is not None or args.steps is not None or args.gmm_components is not None) \
            and args.model != "ldc-sampler":
        return "--from, --steps and --gmm-components are only for --model ldc-sampler"
    if args.model == "ldc-sampler":
        try:
            refit_config(args)
        except ValueError as e:
            return str(e)
    try:
        tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr or 1e-3, seed=args.seed,
                           limit=args.limit, max_epochs=args.max_epochs, tol=args.tol)
        training.check_world(tcfg, distributed.env_context().world_size)
        if args.latent_dim is not None and not 1 <= args.latent_dim <= MAX_LATENT_DIM:
            raise ValueError(f"latent_dim must be in 1..{MAX_LATENT_DIM}, got {args.latent_dim}")
        check_writable_folder(Path(args.out) / args.dataset, RUN_BYTES)
    except ValueError as e:
        return str(e)
    return None


def _accepted(family: str, options: dict) -> dict:
    names = {f.name for f in dataclasses.fields(model_class(family).config_class)}
    return {k: v for k, v in options.items() if k in names}


def main(argv=None) -> int:
    args = parse_args(argv)
    given = {field: getattr(args, opt) for opt, field in CONFIG_OPTIONS.items() if getattr(args, opt) is not None}
    if args.all:  # the zoo entry's own settings win; shared options apply where the family has them
        jobs = [(family, {**_accepted(family, given), **over}, name) for name, (family, over) in ZOO.items()]
    elif args.model in ZOO and args.model not in MODELS:  # a zoo name: its settings, then the options given
        family, over = ZOO[args.model]
        jobs = [(family, {**over, **given}, args.name or args.model)]
    else:
        jobs = [(args.model, given, None)]
    if args.all and args.name:
        print("error: --name cannot be used with --all", file=sys.stderr)
        return 2
    if problem := check_args(args):  # everything that can be checked is checked before any work
        print(f"error: {problem}", file=sys.stderr)
        return 2
    set_data_root(args.data_root, download=args.download)
    try:  # under torchrun: join the process group (gloo on CPU, nccl on CUDA)
        _, args.device_resolved = distributed.init(resolve_device(args.device))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        return run_jobs(args, jobs)
    finally:
        distributed.shutdown()


def run_jobs(args: argparse.Namespace, jobs: list) -> int:
    """Train ``jobs`` (family, overrides, name) in turn; the exit status. Under torchrun a
    diverged run ends the job at once (the ranks could no longer agree on what runs next)."""
    if args.model in OTHER_MODELS:
        try:
            OTHER_MODELS[args.model](args)
        except (ValueError, CheckpointError, TrainingDiverged, DatasetNotAvailable) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    failed = []
    for family, overrides, name in jobs:
        try:
            run_one(family, overrides, args, name=name)
        except TrainingDiverged as e:  # keep going through the zoo; report at the end
            print(f"error: {name or family}: training diverged: {e}", file=sys.stderr)
            failed.append(name or family)
            if distributed.world_size() > 1:
                return 1
        except (ValueError, CheckpointError, DatasetNotAvailable) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    if failed:
        print(f"error: diverged: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
