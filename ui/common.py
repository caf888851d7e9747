"""Streamlit glue shared by the pages: navigation, pickers, presentation mode, number lines
and image helpers. What is loaded and measured (checkpoint listing, cached models, sampler
codes, coverage) is in :mod:`ui.catalog`; the math lives in ``explorer``.
"""
from __future__ import annotations

import io
import os

import numpy as np
import streamlit as st
import torch
from PIL import Image
from torchvision.utils import make_grid

from explorer.data import dataset_info
from explorer.layout import list_models
from ui import state
from ui.catalog import checkpoint_dir, checkpoints

APP_DATASETS = ("mnist", "fashion-mnist")  # always listed (shipped checkpoints)
COLOUR_DATASETS = ("cifar10", "celeba")  # listed when the checkpoint folder has models for them


def app_datasets() -> tuple[str, ...]:
    """The sidebar's datasets: MNIST and Fashion-MNIST, then each colour dataset whose folder in
    the checkpoint root holds a usable model (the listing rule of :func:`explorer.layout.list_models`;
    trained with ``--data-root``; the app reads its test images from ``$LATENT_EXPLORER_DATA``)."""
    return APP_DATASETS + tuple(d for d in COLOUR_DATASETS if list_models(checkpoint_dir(), d))
PROJECTIONS = {"pca": "PCA", "umap": "UMAP", "identity": "true latent plane (d = 2)"}
DEFAULT_MODELS = ("vae", "ar-elbo-iso-i", "consistency-vae")
SAMPLER_LABELS = {"prior": "prior N(0, I)", "gmm-10": "GMM-10 on train codes", "gmm-100": "GMM-100 on train codes",
                  "two-stage": "two-stage VAE on train codes", "sampler-net": "sampler net S(ε)"}
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


def modes_markdown(q: dict) -> str:
    """Class entropy, smallest class share and the two memorisation medians as one compact line."""
    return (f"class entropy **{q['class_entropy']:.3f}** · smallest class **{q['min_class_share']:.1%}** · "
            f"classes > 1 % **{q['classes_above_1pct']}** · nearest-train median **{q['nn_median']:.1f}** "
            f"(test images **{q['nn_median_test']:.1f}**; {q.get('nn_n', q.get('n', 2000)):,} searched)")


THREADS_ENV = "LATENT_EXPLORER_THREADS"
DEFAULT_THREADS = 1  # interactive work on a shared 2-core machine: bench/particle_flow.py, 5 s with 1 thread, 33 s with 2


def set_torch_threads() -> str | None:
    """Set torch's intra-op threads from ``$LATENT_EXPLORER_THREADS`` (default 1). Returns a one-line
    message when the variable is not a positive integer (the default is used), else None."""
    raw = os.environ.get(THREADS_ENV)
    n, error = DEFAULT_THREADS, None
    if raw is not None:
        try:
            n = int(raw)
            if n < 1:
                raise ValueError
        except ValueError:
            n, error = DEFAULT_THREADS, (f"{THREADS_ENV}={raw!r} is not a positive integer; using "
                                         f"{DEFAULT_THREADS} torch thread")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return error


SHARE_AXES_HELP = ("Give the PCA maps one x and y range, when their spans differ by at most 5x. UMAP maps "
                   "always keep their own: UMAP coordinates mean nothing across models.")


def share_axes_toggle(container, key: str) -> bool:
    """The "Share PCA axes" checkbox (off by default; a link's ``share_axes=1`` turns it on)."""
    state.restore(key, "share_axes", parse=lambda r: r.lower() in ("1", "true", "yes"))
    return bool(container.checkbox("Share PCA axes", key=key, help=SHARE_AXES_HELP))


def axes_caption(shared_requested: bool, shared: bool) -> str | None:
    """What the page says about its axes, or None."""
    if shared_requested and not shared:
        return "PCA axes are not shared: the models' spans differ by more than 5x (or fewer than two PCA maps)."
    if shared:
        return "PCA maps share their axes; UMAP maps keep their own."
    return None


def class_names(dataset: str) -> tuple[str, ...]:
    return dataset_info(dataset).classes


def current_dataset() -> str:
    """The dataset chosen in the sidebar (set up by app.py; defaults to mnist)."""
    return st.session_state.get("dataset", APP_DATASETS[0])


def pick_models(dataset: str, key: str, label: str = "Models", max_default: int = 3,
                preferred: tuple[str, ...] = DEFAULT_MODELS) -> list[str]:
    """Multiselect over the dataset's usable checkpoints; broken files are reported, not offered."""
    ok, broken = checkpoints(dataset)
    for name, err in broken.items():
        st.warning(f"Skipping {state.escape_md(name)}: {state.escape_md(err)}")
    names = sorted(ok)
    if not names:
        st.info(f"No checkpoints for {dataset} in {state.escape_md(checkpoint_dir() / dataset)}. Train some "
                f"with `python train.py --all --dataset {dataset}`.")
        return []
    default = [n for n in preferred if n in ok][:max_default] or names[:1]
    state.restore(f"{key}_{dataset}", "models", state.csv, allowed=names)  # a link's models win over the default
    widget_key = f"{key}_{dataset}"
    return st.multiselect(label, names, default=None if widget_key in st.session_state else default, key=widget_key)


def presenting() -> bool:
    """True in presentation mode (sidebar toggle, or ``present=1`` in the URL)."""
    return bool(st.session_state.get(state.PRESENT))


def presentation_css() -> str:
    """Style for presentation mode: larger type everywhere (Streamlit sizes in rem), no toolbar (the
    navigation sits along the top instead, app.py)."""
    return ("<style>html { font-size: 22px; } h1 { font-size: 2.4rem !important; } "
            ".stPlotlyChart, .stImage { margin-bottom: 0.5rem; } "
            "[data-testid='stMainBlockContainer'] { padding-top: 2.5rem; } "
            "[data-testid='stToolbarActions'], [data-testid='stMainMenu'], "
            "[data-testid='stAppDeployButton'] { display: none !important; }</style>")


PRESENT_IMAGE_SCALE = 2  # images are drawn this many times larger in presentation mode


def shown_scale(scale: int) -> int:
    """Pixels per image pixel for a picture on screen: ``scale``, doubled in presentation mode."""
    return scale * PRESENT_IMAGE_SCALE if presenting() else scale


def columns_for(n_models: int, default: int = 3) -> int:
    """Columns of model panels: one per model in presentation mode, else ``default``."""
    return max(1, n_models) if presenting() else max(1, default)


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
