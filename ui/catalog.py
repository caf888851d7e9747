"""The app's catalog of models: checkpoint listing, cached loading, sampler codes and their
positions on the map, coverage and mode numbers, test images.

Models are loaded once per file version with ``st.cache_resource`` and never mutated;
arrays (codes, test images) are cached with ``st.cache_data``. The math lives in ``explorer``;
the folder layout in :mod:`explorer.layout`.
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import streamlit as st
import torch

import explorer
from explorer.checkpoint import CheckpointError, read_metadata
from explorer.compute import N_APP
from explorer.data import DatasetNotAvailable, load_dataset
from explorer.io import read_table
from explorer.layout import model_name, scan_models, sidecar_path
from explorer.models.ldc_vae import particle_flow
from explorer.projection import to_plane
from ui.state import escape_md

ROOT = Path(__file__).resolve().parent.parent
NN_ON_DEMAND = 500  # samples whose nearest training image is searched when no stored measure exists
N_CODES = N_APP  # codes per sampler shown and measured, as stored at train time


def checkpoint_dir() -> Path:
    """``$LATENT_EXPLORER_CHECKPOINTS`` or the repository's ``checkpoints/``."""
    return Path(os.environ.get("LATENT_EXPLORER_CHECKPOINTS", ROOT / "checkpoints"))


def _listing_key(dataset: str) -> tuple:
    """Model checkpoints of a dataset (ex-post sidecars ``*.expost.safetensors`` are not models):
    ``(path, mtime, size, None)`` per usable entry, ``(name, 0, 0, why)`` per unusable one (a bad
    name, a broken or outside symlink, not a file: :func:`explorer.layout.scan_models`)."""
    files, unusable = scan_models(checkpoint_dir(), dataset)
    out = []
    for p in files.values():
        try:
            st_ = p.stat()
            out.append((str(p), st_.st_mtime_ns, st_.st_size, None))
        except OSError as e:  # removed or replaced between the listing and now
            out.append((model_name(p), 0, 0, f"{p.name}: {e.strerror or e}"))
    return tuple(out) + tuple((name, 0, 0, why) for name, why in unusable.items())


@st.cache_resource(show_spinner=False, max_entries=32)
def _scan(listing: tuple) -> tuple[dict, dict]:
    # cache_resource, not cache_data: the headers are read-only and cache_data would deep-copy
    # every checkpoint's metadata (histories, metrics) on each rerun (~4 ms per rerun here).
    ok, broken = {}, {}
    for path, _, _, why in listing:
        if why is not None:
            broken[path] = why
            continue
        name = model_name(path)
        try:
            header = read_metadata(path)
            ok[name] = {"path": path, "family": header["family"], "config": header["config"],
                        "meta": header["meta"]}
        except CheckpointError as e:
            broken[name] = str(e)
        except Exception as e:  # noqa: BLE001 - one bad file must never hide the others
            broken[name] = f"{Path(path).name}: unreadable ({type(e).__name__}: {str(e)[:200]})"
    return dict(sorted(ok.items())), dict(sorted(broken.items()))


def results_dir() -> Path:
    """``$LATENT_EXPLORER_RESULTS`` or the repository's ``results/`` (the tables of explorer.evaluate)."""
    return Path(os.environ.get("LATENT_EXPLORER_RESULTS", ROOT / "results"))


@st.cache_data(show_spinner=False, max_entries=16)
def _read_results(dataset: str, listing: tuple) -> tuple[dict, dict]:
    tables, problems = {}, {}
    for path, _ in listing:
        name = Path(path).name
        try:
            table = read_table(path)
        except ValueError as e:  # already one line naming the file
            problems[name] = str(e)
            continue
        except OSError as e:
            problems[name] = f"{name}: {e.strerror or e}"
            continue
        if table["dataset"] != dataset:
            problems[name] = f"{name} holds {table['dataset'][:80]!r} rows, not {dataset}'s"
            continue
        tables[name[len(dataset) + 1: -len(".json")]] = table
    return tables, problems


def results_tables(dataset: str) -> tuple[dict, dict]:
    """``(backbone -> table, file name -> why unusable)`` from ``results/<dataset>-<backbone>.json``,
    re-read when a file changes. A file that is not a table (explorer.io.read_table) or holds
    another dataset's rows is named in the second dict, never raised: the other tables still show."""
    folder = results_dir()
    listing = []
    for p in sorted(folder.glob(f"{dataset}-*.json")) if folder.is_dir() else []:
        try:
            listing.append((str(p), p.stat().st_mtime_ns))
        except OSError:  # removed between the listing and now
            continue
    return _read_results(dataset, tuple(listing))


RUN_LISTINGS = "_catalog_listings"  # session-state key: this run's folder listings, dataset -> (ok, broken)


def begin_run() -> None:
    """Start a full rerun's memo of folder listings (``app.py`` calls it before the page runs): the
    checkpoint folder is then listed once per rerun, not once per :func:`checkpoints` call (a
    Coverage rerun made ~18 calls, ~15 % of its server time under load: ``bench/load.py``, py-spy).
    A fragment rerun keeps its page's listing; a page run without ``app.py`` lists on every call."""
    st.session_state[RUN_LISTINGS] = {}


def checkpoints(dataset: str) -> tuple[dict, dict]:
    """``(ok, broken)`` for a dataset: name -> header dict, and name -> error message."""
    memo = st.session_state.get(RUN_LISTINGS)
    if memo is None:
        return _scan(_listing_key(dataset))
    if dataset not in memo:
        memo[dataset] = _scan(_listing_key(dataset))
    return memo[dataset]


@st.cache_resource(show_spinner="Loading model ...")
def _load(path: str, version: tuple):
    with warnings.catch_warnings(record=True) as caught:  # a stale or broken ex-post sidecar
        warnings.simplefilter("always")
        model = explorer.load(path)
    return model, tuple(str(w.message) for w in caught if issubclass(w.category, UserWarning))


def _version(path: str) -> tuple:
    """Cache key of a checkpoint's state: mtimes of the file and of its ex-post sidecar (0 if none)."""
    side = sidecar_path(path)
    return Path(path).stat().st_mtime_ns, side.stat().st_mtime_ns if side.is_file() else 0


def model_version(dataset: str, name: str) -> tuple:
    """:func:`_version` of a listed checkpoint (for cache keys of values derived from the model)."""
    return _version(checkpoints(dataset)[0][name]["path"])


def get_model(dataset: str, name: str):
    """The loaded model (shared, read-only) for a shipped checkpoint, or None with a warning shown.

    A stale or unreadable ex-post sidecar is shown as a warning; the model is returned without
    its ``gmm-100`` and ``two-stage`` samplers then."""
    ok, _ = checkpoints(dataset)
    if name not in ok:
        st.warning(f"No usable checkpoint {escape_md(repr(name))} for {escape_md(dataset)}.")
        return None
    path = ok[name]["path"]
    try:
        model, problems = _load(path, _version(path))
    except CheckpointError as e:
        st.warning(escape_md(str(e)))
        return None
    except OSError as e:  # removed or unreadable since it was listed
        st.warning(escape_md(f"{name}: cannot be read ({e.strerror or e})"))
        return None
    for msg in problems:
        st.warning(escape_md(msg))
    return model


def loaded_model(dataset: str, name: str):
    """The loaded model of a listed checkpoint, without UI (helpers below; pages use :func:`get_model`)."""
    path = checkpoints(dataset)[0][name]["path"]
    return _load(path, _version(path))[0]


@st.cache_data(show_spinner="Drawing samples ...", max_entries=128)
def _drawn_codes(dataset: str, name: str, sampler: str, version: tuple) -> np.ndarray:
    model = loaded_model(dataset, name)
    with torch.no_grad():  # the seed and generator of explorer.evaluate.app_arrays and sampler_coverage
        return model.sample(N_CODES, sampler, generator=torch.Generator().manual_seed(0)).cpu().numpy()


def sampler_codes(dataset: str, name: str, sampler: str) -> np.ndarray:
    """``N_CODES`` codes ``(N, d)`` of one of the model's samplers: the ones stored at train time
    when the checkpoint has them (prior, gmm-10, sampler-net), else drawn now (ex-post sidecar
    samplers) with the same seed, and cached."""
    a = loaded_model(dataset, name).arrays
    if sampler in a:
        return a[sampler].numpy()
    return _drawn_codes(dataset, name, sampler, model_version(dataset, name))


def sampler_xy(dataset: str, name: str, sampler: str, projection: str) -> np.ndarray | None:
    """Positions ``(N, 2)`` of :func:`sampler_codes` in the model's stored 2-D projection of its
    encoder means (``P_test``): the stored arrays when present (train-time samplers), else placed
    by :func:`explorer.projection.to_plane` (PCA exact, d = 2 as is, UMAP approximately: see
    :func:`placed_approximately`) and cached. None when the model has no such projection."""
    a = loaded_model(dataset, name).arrays
    if f"{projection}_{sampler}" in a:
        return a[f"{projection}_{sampler}"].numpy()
    if f"{projection}_test" not in a:
        return None
    return _placed(dataset, name, sampler, projection, model_version(dataset, name))


def placed_approximately(model, sampler: str, projection: str) -> bool:
    """True when :func:`sampler_xy` places this sampler's codes by nearest neighbours (UMAP, no stored positions)."""
    return projection == "umap" and f"umap_{sampler}" not in model.arrays and "umap_test" in model.arrays


@st.cache_data(show_spinner="Placing codes on the map ...", max_entries=128)
def _placed(dataset: str, name: str, sampler: str, projection: str, version: tuple) -> np.ndarray:
    return to_plane(loaded_model(dataset, name).arrays, sampler_codes(dataset, name, sampler), projection)


UMAP_PLACEMENT_NOTE = ("UMAP's fitted model is not stored, so the codes of samplers fitted after training (GMM-100, "
                       "two-stage VAE) are placed at the weighted mean of the UMAP positions of their 15 nearest "
                       "encoder means, where UMAP's own transform starts (for the stored GMM-10 codes this lands "
                       "within 1–2 % of the plot's span of UMAP's transform, median).")


@st.cache_data(show_spinner="Loading test images ...")
def test_images(dataset: str, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """First ``n`` test images ``(n, C, H, W)`` float32 and labels ``(n,)``."""
    x, y = load_dataset(dataset, "test", limit=n)
    return x.numpy(), y.numpy()


REFERENCES = {"draw": "one draw z ~ q(z|x) per test image", "means": "encoder means"}  # what a sampler must cover


def reference_codes(dataset: str, name: str, reference: str) -> np.ndarray:
    """The encoder side of a coverage comparison, ``(N_CODES, d)``: ``means``, the stored encoder
    means of the first test images; ``draw``, one z ~ q(z|x) per same image
    (:func:`explorer.evaluate.posterior_draws`, seed 0), a sample of the aggregate posterior,
    computed now and cached.

    Raises:
        ValueError: ``reference`` is not one of :data:`REFERENCES`.
    """
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; choose one of {', '.join(REFERENCES)}")
    if reference == "means":
        return loaded_model(dataset, name).arrays["test_mu"].numpy()
    return _posterior_draws(dataset, name, model_version(dataset, name))


@st.cache_data(show_spinner="Drawing z ~ q(z|x) for the test images ...", max_entries=64)
def _posterior_draws(dataset: str, name: str, version: tuple) -> np.ndarray:
    from explorer.evaluate import posterior_draws  # lazy: sklearn stays out of app start-up

    model = loaded_model(dataset, name)
    x, _ = test_images(dataset, len(model.arrays["test_mu"]))
    return posterior_draws(model, torch.from_numpy(x), seed=0).numpy()


def reference_xy(dataset: str, name: str, reference: str, projection: str) -> np.ndarray:
    """Positions ``(N, 2)`` of :func:`reference_codes` in the model's stored ``projection`` map of
    its encoder means (the means: the map itself; the draws: placed by :func:`explorer.projection.to_plane`)."""
    a = loaded_model(dataset, name).arrays
    if reference == "means":
        return a[f"{projection}_test"].numpy()
    return _placed_draws(dataset, name, projection, model_version(dataset, name))


@st.cache_data(show_spinner="Placing z ~ q(z|x) on the map ...", max_entries=64)
def _placed_draws(dataset: str, name: str, projection: str, version: tuple) -> np.ndarray:
    return to_plane(loaded_model(dataset, name).arrays, reference_codes(dataset, name, "draw"), projection)


def covered_points(dataset: str, name: str, sampler: str, reference: str) -> np.ndarray:
    """``(N,)`` bool: the :func:`reference_codes` that some :func:`sampler_codes` code covers (lies
    inside their k-NN ball, k = 5; :func:`explorer.metrics.covered`). Its mean is the coverage shown."""
    return _covered(dataset, name, sampler, reference, model_version(dataset, name))


@st.cache_data(show_spinner="Finding the covered points ...", max_entries=128)
def _covered(dataset: str, name: str, sampler: str, reference: str, version: tuple) -> np.ndarray:
    from explorer.metrics import covered  # lazy: sklearn stays out of app start-up

    return covered(reference_codes(dataset, name, reference), sampler_codes(dataset, name, sampler))


def coverage_numbers(dataset: str, name: str, sampler: str, reference: str = "means") -> dict:
    """Coverage numbers of one sampler against the encoder side ``reference`` (:data:`REFERENCES`).
    Against the encoder means: stored at train time (in the checkpoint) or at fit time (in the
    ex-post sidecar) when there; otherwise, and always against posterior draws, computed from
    :func:`sampler_codes` and :func:`reference_codes` (:func:`explorer.evaluate.coverage_metrics`)
    and cached."""
    if reference == "means":
        return _coverage_numbers(dataset, name, sampler, model_version(dataset, name))
    return _coverage_vs_draws(dataset, name, sampler, model_version(dataset, name))


@st.cache_data(show_spinner="Computing coverage ...", max_entries=128)
def _coverage_vs_draws(dataset: str, name: str, sampler: str, version: tuple) -> dict:
    from explorer.evaluate import coverage_metrics  # lazy: sklearn stays out of app start-up

    return coverage_metrics(torch.as_tensor(reference_codes(dataset, name, "draw")),
                            torch.as_tensor(sampler_codes(dataset, name, sampler)))


@st.cache_data(show_spinner="Computing coverage ...")
def _coverage_numbers(dataset: str, name: str, sampler: str, version: tuple) -> dict:
    metrics = checkpoints(dataset)[0][name]["meta"].get("metrics", {})
    if sampler in metrics.get("sampler_coverage", {}):
        return metrics["sampler_coverage"][sampler]
    if sampler == "prior" and "coverage" in metrics:
        return metrics["coverage"]
    model = loaded_model(dataset, name)
    stored = getattr(model.expost, "meta", {}).get("sampler_coverage", {}) if model.expost is not None else {}
    if sampler in stored:
        return stored[sampler]
    from explorer.evaluate import coverage_metrics  # lazy: sklearn stays out of app start-up

    return coverage_metrics(model.arrays["test_mu"], torch.as_tensor(sampler_codes(dataset, name, sampler)))


def mode_numbers(dataset: str, name: str, sampler: str) -> dict | None:
    """Class histogram, class entropy and memorisation medians of one sampler's 2,000 decoded
    samples (:func:`explorer.evaluate.sampler_modes`): stored at train time (checkpoint) or fit
    time (ex-post sidecar) when there, else computed now and cached; None without the dataset's
    shipped classifier."""
    return _mode_numbers(dataset, name, sampler, model_version(dataset, name))


@st.cache_data(show_spinner="Classifying samples ...")
def _mode_numbers(dataset: str, name: str, sampler: str, version: tuple) -> dict | None:
    metrics = checkpoints(dataset)[0][name]["meta"].get("metrics", {})
    if sampler in (metrics.get("sampler_modes") or {}):
        return metrics["sampler_modes"][sampler]
    model = loaded_model(dataset, name)
    stored = getattr(model.expost, "meta", {}).get("sampler_modes", {}) if model.expost is not None else {}
    if sampler in stored:
        return stored[sampler]
    from explorer.evaluate import sampler_modes  # lazy: sklearn stays out of app start-up

    # not stored (a checkpoint or sidecar made before these measures): classes of all 2,000 samples, the
    # nearest-training-image search on the first 500 only (2 s instead of 8 on 2 cores)
    return sampler_modes(model, dataset, n=N_CODES, samplers=[sampler], checkpoints=checkpoint_dir(),
                         nn_n=NN_ON_DEMAND).get(sampler)


DEFAULT_FLOW = dict(n_particles=64, steps=100, step_size=0.05)  # Particle flow's default view (test image 0)


@st.cache_resource(show_spinner=False, max_entries=16)
def default_flow(dataset: str, name: str, version: tuple) -> Future:
    """The Particle flow page's default view for an LDC-VAE checkpoint (test image 0,
    :data:`DEFAULT_FLOW`, seed 0), started in a background thread the first time it is asked for:
    app.py asks for every LDC-VAE checkpoint when a session starts, so the page finds it done.
    Returns a future of the ``(steps + 1, n_particles, d)`` trajectory."""
    model = loaded_model(dataset, name)

    def run() -> np.ndarray:  # the test image is read in the worker too, off the app's start-up
        x, _ = load_dataset(dataset, "test", limit=1)
        return particle_flow(model, x[0], DEFAULT_FLOW["n_particles"], DEFAULT_FLOW["steps"],
                             DEFAULT_FLOW["step_size"], seed=0).numpy()

    return _FLOW_POOL.submit(run)


def warm_default_flows(dataset: str) -> None:
    """Start :func:`default_flow` for every usable LDC-VAE checkpoint of ``dataset`` (no-op when started)."""
    for name, head in checkpoints(dataset)[0].items():
        if head["family"] == "ldc-vae":
            try:
                default_flow(dataset, name, model_version(dataset, name))
            except (CheckpointError, DatasetNotAvailable, OSError):
                pass  # the page reports it when opened


_FLOW_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="default-flow")


def safe_dataset_images(dataset: str, n: int = 2000):
    """Like :func:`test_images`, but shows the install hint and returns None when the dataset is missing."""
    try:
        return test_images(dataset, n)
    except DatasetNotAvailable as e:
        st.error(escape_md(str(e)))
        return None
