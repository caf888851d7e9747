"""Streamlit glue shared by the pages: cached loading, pickers and image helpers.

Models are loaded once per file version with ``st.cache_resource`` and never mutated;
arrays (test images) are cached with ``st.cache_data``. The math lives in ``explorer``.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import streamlit as st
import torch
from PIL import Image
from torchvision.utils import make_grid

import explorer
from explorer.checkpoint import EXT, CheckpointError, read_metadata
from explorer.data import DatasetNotAvailable, dataset_info, load_dataset

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ("mnist", "fashion-mnist")
PROJECTIONS = {"pca": "PCA", "umap": "UMAP", "identity": "true latent plane (d = 2)"}
DEFAULT_MODELS = ("vae", "ar-elbo-iso-i", "consistency-vae")
SAMPLER_LABELS = {"prior": "prior N(0, I)", "gmm": "GMM-10 on train codes", "sampler-net": "sampler net S(ε)"}


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
    """A compact Markdown table of precision/recall/density/coverage/MMD² numbers."""
    keys = ("coverage", "density", "precision", "recall", "mmd")
    head = "| " + " | ".join("MMD²" if k == "mmd" else k for k in keys) + " |"
    return "\n".join([head, "|" + "---:|" * len(keys), "| " + " | ".join(f"{cov[k]:.3f}" for k in keys) + " |"])


def checkpoint_dir() -> Path:
    """``$LATENT_EXPLORER_CHECKPOINTS`` or the repository's ``checkpoints/``."""
    return Path(os.environ.get("LATENT_EXPLORER_CHECKPOINTS", ROOT / "checkpoints"))


def _listing_key(dataset: str) -> tuple:
    folder = checkpoint_dir() / dataset
    files = sorted(folder.glob(f"*{EXT}")) if folder.is_dir() else []
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
def _load(path: str, mtime_ns: int):
    return explorer.load(path)


def get_model(dataset: str, name: str):
    """The loaded model (shared, read-only) for a shipped checkpoint, or None with a warning shown."""
    ok, _ = checkpoints(dataset)
    if name not in ok:
        st.warning(f"No usable checkpoint {name!r} for {dataset}.")
        return None
    path = ok[name]["path"]
    try:
        return _load(path, Path(path).stat().st_mtime_ns)
    except CheckpointError as e:
        st.warning(str(e))
        return None


@st.cache_data(show_spinner="Loading test images ...")
def test_images(dataset: str, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """First ``n`` test images ``(n, C, H, W)`` float32 and labels ``(n,)``."""
    x, y = load_dataset(dataset, "test", limit=n)
    return x.numpy(), y.numpy()


@st.cache_data(show_spinner="Computing coverage ...")
def coverage_numbers(dataset: str, name: str, sampler: str) -> dict:
    """Coverage numbers of one sampler against the encoder means: stored at train time when the
    checkpoint has them, else computed from its stored arrays (:func:`explorer.evaluate.coverage_metrics`)."""
    metrics = checkpoints(dataset)[0][name]["meta"].get("metrics", {})
    if sampler in metrics.get("sampler_coverage", {}):
        return metrics["sampler_coverage"][sampler]
    if sampler == "prior" and "coverage" in metrics:
        return metrics["coverage"]
    a = get_model(dataset, name).arrays
    from explorer.evaluate import coverage_metrics  # lazy: sklearn stays out of app start-up

    return coverage_metrics(a["test_mu"], a[sampler])


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
    return st.multiselect(label, names, default=default, key=f"{key}_{dataset}")


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
