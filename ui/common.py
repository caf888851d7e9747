"""Streamlit glue shared by the pages: cached loading, pickers and image helpers.

Models are loaded once per file version with ``st.cache_resource`` and never mutated;
arrays (test images) are cached with ``st.cache_data``. The math lives in ``explorer``.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from PIL import Image
from torchvision.utils import make_grid

import explorer
from explorer.checkpoint import EXT, CheckpointError, read_metadata
from explorer.data import DatasetNotAvailable, dataset_info, load_dataset
from explorer.expost import is_sidecar, sidecar_path
from ui import state

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ("mnist", "fashion-mnist")
PROJECTIONS = {"pca": "PCA", "umap": "UMAP", "identity": "true latent plane (d = 2)"}
DEFAULT_MODELS = ("vae", "ar-elbo-iso-i", "consistency-vae")
SAMPLER_LABELS = {"prior": "prior N(0, I)", "gmm-10": "GMM-10 on train codes", "gmm-100": "GMM-100 on train codes",
                  "two-stage": "two-stage VAE on train codes", "sampler-net": "sampler net S(ε)"}
NN_ON_DEMAND = 500  # samples whose nearest training image is searched when no stored measure exists
N_CODES = 2000  # codes per sampler shown and measured (explorer.evaluate.N_APP, as stored at train time)


NAV_FLAG = "_latent_explorer_navigation"


def ensure_navigation() -> None:
    """Make a deep link (e.g. ``/coverage``) go through app.py's ``st.navigation``.

    Streamlit 1.67 still runs a ``pages/`` folder as v1 multipage pages until ``st.navigation``
    has been called once in the server process (and ``AppTest`` resets that before every
    run), so e.g. the first session after start-up that opens ``/coverage`` would run the
    page without app.py: no sidebar, no dataset picker, v1 page names.
    app.py sets ``NAV_FLAG`` only for the duration of the ``st.navigation(...).run()`` call,
    and each page calls this first: when the flag is missing, this run bypassed app.py, so
    switch Streamlit to ``st.navigation`` mode and rerun, which runs app.py and then the
    requested page. (An interrupted run keeps its widget state, so nothing is lost.)
    """
    if NAV_FLAG in st.session_state:
        return
    from streamlit.runtime.pages_manager import PagesManager
    PagesManager.uses_pages_directory = False
    st.rerun()


def axis_titles(projection: str) -> tuple[str, str]:
    """Axis labels for a projection's two coordinates."""
    if projection == "identity":
        return "z1", "z2"
    return f"{PROJECTIONS[projection]} 1", f"{PROJECTIONS[projection]} 2"


def coverage_markdown(cov: dict) -> str:
    """Precision/recall/density/coverage/MMD² numbers as one compact line that wraps in narrow columns."""
    keys = ("coverage", "density", "precision", "recall", "mmd")
    return " · ".join(f"{'MMD²' if k == 'mmd' else k} **{cov[k]:.3f}**" for k in keys)


def checkpoint_dir() -> Path:
    """``$LATENT_EXPLORER_CHECKPOINTS`` or the repository's ``checkpoints/``."""
    return Path(os.environ.get("LATENT_EXPLORER_CHECKPOINTS", ROOT / "checkpoints"))


def _listing_key(dataset: str) -> tuple:
    """Model checkpoints of a dataset (ex-post sidecars ``*.expost.safetensors`` are not models)."""
    folder = checkpoint_dir() / dataset
    files = sorted(p for p in folder.glob(f"*{EXT}") if not is_sidecar(p)) if folder.is_dir() else []
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)


@st.cache_resource(show_spinner=False, max_entries=32)
def _scan(listing: tuple) -> tuple[dict, dict]:
    # cache_resource, not cache_data: the headers are read-only and cache_data would deep-copy
    # every checkpoint's metadata (histories, metrics) on each rerun (~4 ms per rerun here).
    ok, broken = {}, {}
    for path, _, _ in listing:
        name = Path(path).name[: -len(EXT)]
        try:
            header = read_metadata(path)
            ok[name] = {"path": path, "family": header["family"], "config": header["config"],
                        "meta": header["meta"]}
        except CheckpointError as e:
            broken[name] = str(e)
    return ok, broken


def checkpoints(dataset: str) -> tuple[dict, dict]:
    """``(ok, broken)`` for a dataset: name -> header dict, and name -> error message."""
    return _scan(_listing_key(dataset))


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
        st.warning(f"No usable checkpoint {name!r} for {dataset}.")
        return None
    path = ok[name]["path"]
    try:
        model, problems = _load(path, _version(path))
    except CheckpointError as e:
        st.warning(str(e))
        return None
    for msg in problems:
        st.warning(msg)
    return model


def _model(dataset: str, name: str):
    """The loaded model of a listed checkpoint, without UI (helpers below; pages use :func:`get_model`)."""
    path = checkpoints(dataset)[0][name]["path"]
    return _load(path, _version(path))[0]


@st.cache_data(show_spinner="Drawing samples ...", max_entries=128)
def _drawn_codes(dataset: str, name: str, sampler: str, version: tuple) -> np.ndarray:
    model = _model(dataset, name)
    with torch.no_grad():  # the seed and generator of explorer.evaluate.app_arrays and sampler_coverage
        return model.sample(N_CODES, sampler, generator=torch.Generator().manual_seed(0)).cpu().numpy()


def sampler_codes(dataset: str, name: str, sampler: str) -> np.ndarray:
    """``N_CODES`` codes ``(N, d)`` of one of the model's samplers: the ones stored at train time
    when the checkpoint has them (prior, gmm-10, sampler-net), else drawn now (ex-post sidecar
    samplers) with the same seed, and cached."""
    a = _model(dataset, name).arrays
    if sampler in a:
        return a[sampler].numpy()
    return _drawn_codes(dataset, name, sampler, model_version(dataset, name))


def sampler_xy(dataset: str, name: str, sampler: str, projection: str) -> np.ndarray | None:
    """Positions ``(N, 2)`` of :func:`sampler_codes` in the model's stored 2-D projection of its
    encoder means (``P_test``): the stored arrays when present (train-time samplers), else placed
    by :func:`explorer.projection.to_plane` (PCA exact, d = 2 as is, UMAP approximately: see
    :func:`placed_approximately`) and cached. None when the model has no such projection."""
    a = _model(dataset, name).arrays
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
    from explorer.projection import to_plane

    return to_plane(_model(dataset, name).arrays, sampler_codes(dataset, name, sampler), projection)


UMAP_PLACEMENT_NOTE = ("UMAP's fitted model is not stored, so the codes of samplers fitted after training (GMM-100, "
                       "two-stage VAE) are placed at the weighted mean of the UMAP positions of their 15 nearest "
                       "encoder means, where UMAP's own transform starts (for the stored GMM-10 codes this lands "
                       "within 1–2 % of the plot's span of UMAP's transform, median).")


@st.cache_data(show_spinner="Loading test images ...")
def test_images(dataset: str, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """First ``n`` test images ``(n, C, H, W)`` float32 and labels ``(n,)``."""
    x, y = load_dataset(dataset, "test", limit=n)
    return x.numpy(), y.numpy()


def coverage_numbers(dataset: str, name: str, sampler: str) -> dict:
    """Coverage numbers of one sampler against the encoder means: stored at train time (in the
    checkpoint) or at fit time (in the ex-post sidecar) when there, else computed from
    :func:`sampler_codes` (:func:`explorer.evaluate.coverage_metrics`) and cached."""
    return _coverage_numbers(dataset, name, sampler, model_version(dataset, name))


@st.cache_data(show_spinner="Computing coverage ...")
def _coverage_numbers(dataset: str, name: str, sampler: str, version: tuple) -> dict:
    metrics = checkpoints(dataset)[0][name]["meta"].get("metrics", {})
    if sampler in metrics.get("sampler_coverage", {}):
        return metrics["sampler_coverage"][sampler]
    if sampler == "prior" and "coverage" in metrics:
        return metrics["coverage"]
    model = _model(dataset, name)
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
    model = _model(dataset, name)
    stored = getattr(model.expost, "meta", {}).get("sampler_modes", {}) if model.expost is not None else {}
    if sampler in stored:
        return stored[sampler]
    from explorer.evaluate import sampler_modes  # lazy: sklearn stays out of app start-up

    # not stored (a checkpoint or sidecar made before these measures): classes of all 2,000 samples, the
    # nearest-training-image search on the first 500 only (2 s instead of 8 on 2 cores)
    return sampler_modes(model, dataset, n=N_CODES, samplers=[sampler], checkpoints=checkpoint_dir(),
                         nn_n=NN_ON_DEMAND).get(sampler)


def modes_markdown(q: dict) -> str:
    """Class entropy, smallest class share and the two memorisation medians as one compact line."""
    return (f"class entropy **{q['class_entropy']:.3f}** · smallest class **{q['min_class_share']:.1%}** · "
            f"classes > 1 % **{q['classes_above_1pct']}** · nearest-train median **{q['nn_median']:.1f}** "
            f"(test images **{q['nn_median_test']:.1f}**; {q.get('nn_n', q.get('n', 2000)):,} searched)")


def class_names(dataset: str) -> tuple[str, ...]:
    return dataset_info(dataset).classes


def current_dataset() -> str:
    """The dataset chosen in the sidebar (set up by app.py; defaults to mnist)."""
    return st.session_state.get("dataset", DATASETS[0])


def pick_models(dataset: str, key: str, label: str = "Models", max_default: int = 3,
                preferred: tuple[str, ...] = DEFAULT_MODELS) -> list[str]:
    """Multiselect over the dataset's usable checkpoints; broken files are reported, not offered."""
    ok, broken = checkpoints(dataset)
    for name, err in broken.items():
        st.warning(f"Skipping {name}: {err}")
    names = sorted(ok)
    if not names:
        st.info(f"No checkpoints for {dataset} in {checkpoint_dir() / dataset}. Train some with "
                f"`python train.py --all --dataset {dataset}`.")
        return []
    default = [n for n in preferred if n in ok][:max_default] or names[:1]
    state.restore(f"{key}_{dataset}", "models", state.csv, allowed=names)  # a link's models win over the default
    widget_key = f"{key}_{dataset}"
    return st.multiselect(label, names, default=None if widget_key in st.session_state else default, key=widget_key)


def presenting() -> bool:
    """True in presentation mode (sidebar toggle, or ``present=1`` in the URL)."""
    return bool(st.session_state.get(state.PRESENT))


def presentation_css() -> str:
    """Style for presentation mode: larger type everywhere (Streamlit sizes in rem)."""
    return ("<style>html { font-size: 22px; } h1 { font-size: 2.4rem !important; } "
            ".stPlotlyChart, .stImage { margin-bottom: 0.5rem; }</style>")


def columns_for(n_models: int, default: int = 3) -> int:
    """Columns of model panels: one per model in presentation mode, else ``default``."""
    return max(1, n_models) if presenting() else max(1, default)


def safe_dataset_images(dataset: str, n: int = 2000):
    """Like :func:`test_images`, but shows the install hint and returns None when the dataset is missing."""
    try:
        return test_images(dataset, n)
    except DatasetNotAvailable as e:
        st.error(str(e))
        return None


def to_image(x, scale: int = 6) -> np.ndarray:
    """One image ``(C, H, W)`` (tensor or array, [0, 1]) -> uint8 ``(H*scale, W*scale[, 3])`` (nearest)."""
    a = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)
    a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    a = a.repeat(scale, axis=1).repeat(scale, axis=2)
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def to_png(picture: np.ndarray) -> bytes:
    """A uint8 picture ``(H, W)`` or ``(H, W, 3)`` -> PNG bytes (``st.image`` shows bytes without re-encoding)."""
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG")
    return buf.getvalue()


def to_grid(images, nrow: int = 8, scale: int = 3) -> np.ndarray:
    """Images ``(B, C, H, W)`` in [0, 1] -> one uint8 grid picture (torchvision ``make_grid``)."""
    t = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images.detach().cpu()
    grid = make_grid(t.clamp(0, 1), nrow=nrow, padding=1, pad_value=0.5)
    return to_image(grid, scale)
