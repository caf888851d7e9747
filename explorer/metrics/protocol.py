"""The papers' image-space evaluation protocol: Fréchet distance and precision/recall of
reconstructions, samples and interpolations against the training set.

Sets of ``n`` images per model (000 Table I: rec / sample / interp; 002 Tables 3-4: one row per
ex-post sampler):

- ``rec``: decode(encode(x)) of the first ``n`` test images.
- ``sample``: decode(z) for ``n`` codes z from each sampler in ``model.samplers`` (``variant`` is
  the sampler's name).
- ``interp``: ``n`` random test pairs (x_i, x_j), i ≠ j; decoded spherical interpolations of
  their encoder means at t = 0.5 (``variant`` ``mid``, the midpoint protocol of 000 and Ghosh et
  al. 2020) and at t ~ U(0, 1) per pair (``variant`` ``rand``).
- a ``data`` row: the ``n`` test images themselves, the floor any model is compared against.

Every set is compared with the reference features of the first ``n_ref`` training images:
Fréchet distance of the Gaussian fits (:func:`explorer.metrics.frechet.frechet_distance`) and
precision, recall, density and coverage (k = 5; :func:`explorer.metrics.latent.prdc`) between
the first ``prdc_n`` features of each. Reference features are cached on disk per dataset,
``n_ref`` and backbone key (network file hash and preprocessing); see :func:`cache_dir`.

Each row records the backbone, its label (``FID`` or ``FD (classifier)``), n, the reference
set and the device, so a table never mixes protocols silently.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as st_save
from tqdm.auto import tqdm

from ..data import load_dataset
from ..compute import batched
from ..interpolation import slerp
from .. import distributed
from ..io import CheckpointError, atomic_write_bytes, read_safetensors
from .frechet import feature_statistics, frechet_distance
from .latent import prdc
from .modes import class_histogram, classify, mode_stats, nearest_sq_distances

PRDC_K = 5
NN_N = 2000  # images per set whose nearest training image is searched (the median of 2,000 is stable to ~1 %)


def cache_dir() -> Path:
    """Folder for cached reference features: ``$LATENT_EXPLORER_CACHE``, else
    ``$XDG_CACHE_HOME/latent-explorer``, else ``~/.cache/latent-explorer``."""
    if os.environ.get("LATENT_EXPLORER_CACHE"):
        return Path(os.environ["LATENT_EXPLORER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "latent-explorer"


def reference_features(dataset: str, backbone, n_ref: int | None = None, cache: Path | None = None,
                       log=print) -> tuple[torch.Tensor, str]:
    """Features ``(n_ref, F)`` of the first ``n_ref`` training images (all when None) and a description.

    Read from the cache when a file for (dataset, n_ref, backbone.key) exists, else computed and
    written atomically. A cache file that cannot be read is recomputed and replaced.
    """
    x, _ = load_dataset(dataset, "train", limit=n_ref)
    desc = f"{dataset} train, first {len(x)} images"
    path = (cache or cache_dir()) / "fid" / f"{dataset}-train{len(x)}-{backbone.key}.safetensors"
    feats = None
    if path.is_file():
        try:
            _, cached = read_safetensors(path, None, what="a reference-feature cache file")
            feats = cached.get("features")
            if feats is not None and feats.shape != (len(x), backbone.feature_dim):
                feats = None
        except CheckpointError:  # unreadable cache entry: recompute below
            pass
        if feats is None:
            log(f"cache file {path} is unreadable or stale; recomputing")
    if distributed.all_true(feats is not None):  # under torchrun: recompute (sharded) unless every rank has it
        return feats, desc
    t0 = time.perf_counter()
    feats = sharded_features(backbone, x, chunk=1000, progress=f"reference features ({backbone.name})")
    if distributed.rank() == 0:
        atomic_write_bytes(path, st_save({"features": feats.contiguous()}, metadata={"key": backbone.key, "desc": desc}))
        log(f"reference features of {desc} ({backbone.name}) in {time.perf_counter() - t0:.1f} s, cached in {path}")
    return feats, desc


def sharded_features(backbone, images: torch.Tensor, chunk: int | None = None,
                     progress: str | None = None) -> torch.Tensor:
    """``backbone.features`` of ``images (n, C, H, W)`` -> ``(n, F)``, in chunks of ``chunk`` images
    (None: one call; backbones batch internally). Under
    torchrun each rank extracts the features of its contiguous shard
    (:func:`explorer.distributed.shard`) and every rank gets all of them, in order."""
    part = images[distributed.shard(len(images), distributed.rank(), distributed.world_size())]
    size = chunk or max(len(part), 1)
    bar = tqdm(range(0, len(part), size), desc=progress, disable=progress is None or distributed.rank() != 0)
    local = [backbone.features(part[k:k + size]) for k in bar]
    feats = torch.cat(local) if local else torch.zeros(0, backbone.feature_dim)
    return distributed.gather(feats)[0]


def _decode(model, z: torch.Tensor, device) -> torch.Tensor:
    return batched(model.decode, z, batch_size=500, device=device)


def _encode(model, x: torch.Tensor, device) -> torch.Tensor:
    return batched(model.encode, x, batch_size=500, device=device)


def image_sets(model, x_test: torch.Tensor, n: int, seed: int = 0, device: str | torch.device = "cpu"):
    """The protocol's image sets for one model: a list of ``(protocol, variant, make)`` where
    ``make()`` returns ``(n, C, H, W)`` images in [0, 1]. See the module docstring.

    Raises:
        ValueError: ``n`` < 2 or more than the test images available.
    """
    if not 2 <= n <= len(x_test):
        raise ValueError(f"n must be between 2 and the {len(x_test)} test images, got {n}")

    def rec():
        return _decode(model, _encode(model, x_test[:n], device), device)

    def sample(name):
        def make():
            g = torch.Generator().manual_seed(seed)
            torch.manual_seed(seed)
            return _decode(model, model.sample(n, name, generator=g).cpu(), device)
        return make

    g = torch.Generator().manual_seed(seed + 1)
    i = torch.randint(len(x_test), (n,), generator=g)
    j = (i + torch.randint(1, len(x_test), (n,), generator=g)) % len(x_test)  # j != i
    t_rand = torch.rand(n, generator=g)

    def interp(t):
        def make():
            return _decode(model, slerp(_encode(model, x_test[i], device), _encode(model, x_test[j], device), t), device)
        return make

    sets = [("rec", "-", rec)]
    sets += [("sample", s, sample(s)) for s in model.samplers]
    sets += [("interp", "mid", interp(0.5)), ("interp", "rand", interp(t_rand))]
    return sets


def compare(features: torch.Tensor, ref: torch.Tensor, ref_stats, prdc_n: int) -> dict:
    """Fréchet distance and precision/recall/density/coverage of ``features (n, F)`` against ``ref (N, F)``."""
    mu, sigma = feature_statistics(features.double().numpy())
    out = {"fd": frechet_distance(mu, sigma, *ref_stats)}
    m = min(prdc_n, len(features), len(ref))
    out.update(prdc(ref[:m].numpy(), features[:m].numpy(), k=PRDC_K))
    return out


def set_modes(images: torch.Tensor, classifier, n_classes: int, train: torch.Tensor, nn_n: int = NN_N) -> dict:
    """Mode coverage and memorisation of one image set (:mod:`explorer.metrics.modes`): the class
    histogram of all ``images`` under ``classifier`` with its summary, and ``nn_median``, the
    median squared L2 distance from the first ``nn_n`` images to their nearest image in ``train``."""
    out = mode_stats(class_histogram(classify(classifier, images), n_classes))
    out["nn_median"] = float(nearest_sq_distances(images[:nn_n], train).median())
    return out


def evaluate_table(dataset: str, backbone, models: dict, n: int = 10_000, n_ref: int | None = None,
                   prdc_n: int = 5000, seed: int = 0, device: str | torch.device = "cpu",
                   cache: Path | None = None, progress: bool = True, log=print, classifier=None) -> dict:
    """Run the protocol for every model in ``models`` (name -> loaded model) and return the table.

    Returns a dict: ``dataset, backbone, label, backbone_info, n, n_ref, reference, prdc_k,
    prdc_n, seed, device, created, rows``; each row ``model, protocol, variant, fd, precision,
    recall, density, coverage, n, seconds`` plus the table-wide fields a reader needs
    (``backbone, label, reference, device``). With ``classifier`` (the dataset's shipped one,
    whatever the backbone), each row also has :func:`set_modes`: ``class_hist, class_entropy,
    min_class_share, classes_above_1pct, nn_median``, and the table ``nn_median_test``, the
    ``test-data`` row's ``nn_median``.

    Under torchrun, every rank makes every image set and extracts the features of its shard;
    rank 0 gathers them, measures and returns the table; the other ranks return None.

    Raises:
        ValueError: bad ``n`` for the test set.
    """
    x_test, _ = load_dataset(dataset, "test")
    ref, ref_desc = reference_features(dataset, backbone, n_ref, cache=cache, log=log)
    ref_stats = feature_statistics(ref.double().numpy())
    common = {"backbone": backbone.name, "label": backbone.label, "reference": ref_desc, "device": str(device)}
    jobs = [("test-data", "data", "-", lambda: x_test[:n])]
    for name, model in models.items():
        model.to(device).eval()
        jobs += [(name, p, v, make) for p, v, make in image_sets(model, x_test, n, seed=seed, device=device)]
    rows = []
    main = distributed.rank() == 0
    train = load_dataset(dataset, "train")[0] if classifier is not None and main else None
    n_classes = classifier.config.n_classes if classifier is not None else 0
    bar = tqdm(jobs, desc=f"{dataset} {backbone.name}", disable=not (progress and main))
    for name, protocol, variant, make in bar:
        bar.set_postfix_str(f"{name} {protocol} {variant}")
        t0 = time.perf_counter()
        images = make()  # every rank makes the whole set (same seeds); the features are sharded
        feats = sharded_features(backbone, images)
        if not main:
            continue
        row = {"model": name, "protocol": protocol, "variant": variant, **compare(feats, ref, ref_stats, prdc_n)}
        if classifier is not None:
            row.update(set_modes(images, classifier, n_classes, train))
        row.update(n=n, seconds=round(time.perf_counter() - t0, 2), **common)
        rows.append(row)
        extra = (f"  class entropy {row['class_entropy']:.3f} nn median {row['nn_median']:.2f}"
                 if classifier is not None else "")
        log(f"{name:<20} {protocol:<6} {variant:<10} {backbone.label} {row['fd']:10.3f}  precision "
            f"{row['precision']:.3f} recall {row['recall']:.3f} density {row['density']:.3f} "
            f"coverage {row['coverage']:.3f}{extra}  ({row['seconds']} s)")
    for model in models.values():
        model.cpu()
    if not main:
        return None
    return {"dataset": dataset, "backbone": backbone.name, "label": backbone.label,
            "backbone_info": backbone.info, "n": n, "n_ref": len(ref), "reference": ref_desc, "prdc_k": PRDC_K,
            "prdc_n": min(prdc_n, n, len(ref)), "seed": seed, "device": str(device),
            "nn_n": min(NN_N, n) if classifier is not None else None,
            "nn_median_test": rows[0].get("nn_median") if rows else None,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "rows": rows}


MERGE_KEYS = ("dataset", "backbone", "n", "n_ref", "prdc_n", "seed")  # what makes two tables' rows comparable


def merge_tables(old: dict, new: dict, shipped: Iterable[str] | None = None) -> dict:
    """``old`` with the rows of ``new``'s models replaced or added (a model retrained since ``old``).

    Rows stay comparable only under one protocol, so the tables must agree on :data:`MERGE_KEYS`.
    The result keeps ``old``'s header and ``command``, takes ``new``'s ``test-data`` row and
    ``nn_median_test``, merges ``checkpoints`` (model -> SHA-256 of the file its rows measured); ``updates`` lists each merge (models, command, created) after the first run.
    With ``shipped`` (the checkpoint names in the folder now), rows and records of models no longer
    shipped are dropped (a checkpoint removed from the zoo), and the update names them (``dropped``).

    Raises:
        ValueError: the tables differ in one of :data:`MERGE_KEYS` (named, with both values).
    """
    for key in MERGE_KEYS:
        if old.get(key) != new.get(key):
            raise ValueError(f"cannot merge tables with different {key}: {old.get(key)!r} (existing) vs "
                             f"{new.get(key)!r} (new); rerun the whole table")
    models = {r["model"] for r in new["rows"]} - {"test-data"}
    recorded = {r["model"] for r in old["rows"]} | set(old.get("checkpoints", {}))
    gone = set() if shipped is None else recorded - set(shipped) - models - {"test-data"}
    kept = [r for r in old["rows"] if r["model"] not in models | gone | {"test-data"}]
    data = [r for r in new["rows"] if r["model"] == "test-data"]
    checkpoints = {**old.get("checkpoints", {}), **new.get("checkpoints", {})}
    merged = {**old, "rows": data + kept + [r for r in new["rows"] if r["model"] != "test-data"],
              "nn_median_test": new.get("nn_median_test", old.get("nn_median_test")),
              "nn_n": new.get("nn_n", old.get("nn_n")),
              "checkpoints": {k: v for k, v in checkpoints.items() if k not in gone}}
    update = {"models": sorted(models), "command": new.get("command"), "created": new.get("created")}
    if gone:
        update["dropped"] = sorted(gone)
    merged["updates"] = [*old.get("updates", []), update]
    return merged


def stale_models(table: dict, current: dict[str, str]) -> list[str]:
    """Models whose rows in ``table`` measured another file than ``current`` (name -> SHA-256 of
    the checkpoint now shipped): retrained since. Names absent from either side are not judged."""
    recorded = table.get("checkpoints", {})
    return sorted(n for n, sha in recorded.items() if n in current and current[n] != sha)


def remeasured(table: dict) -> tuple[list[str], str]:
    """Which rows were measured after the table's first run, from its ``updates`` (written by
    :func:`merge_tables`): ``(models, last)``, the sorted names of every model an update measured
    again and the latest update's ``created`` string (``""`` when there is none). Entries that are
    not ``{"models": [str, ...], "created": str}`` (a renaming note, a hand-edited file) are skipped."""
    models, last = set(), ""
    updates = table.get("updates")
    for u in updates if isinstance(updates, list) else []:
        names = u.get("models") if isinstance(u, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            continue
        models.update(names)
        created = u.get("created")
        if isinstance(created, str) and created > last:
            last = created
    return sorted(models), last


def write_table(table: dict, path: str | Path) -> None:
    """Write a table as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(table, indent=1, default=_json_default) + "\n").encode())


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"cannot write {type(o).__name__} to JSON")
