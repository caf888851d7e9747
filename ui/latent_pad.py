"""The latent pad: sliders whose images follow the mouse, decoded in the browser.

A Streamlit custom component (``st.components.v2``; ``ui/latent_pad.js``, ``ui/latent_pad.css``):
one range input per latent dimension and one canvas per model. The browser decodes with
onnxruntime-web (WebAssembly) on every ``input`` event, from each checkpoint's decoder exported to
ONNX (:mod:`explorer.onnx_export`). Python hears of z only on release, for the link and the
server-side views (traversal grid, manifold). The map of encoder means is drawn once in the browser;
the star that marks z moves with the sliders, without the map being sent again.

Everything the browser loads comes from the app itself (``server.enableStaticServing``):
onnxruntime-web's files in ``static/ort/`` (shipped) and the exports in ``static/onnx/`` (made on
first use, keyed by the checkpoint's SHA-256). When the browser cannot run them (no WebAssembly), the
pad reports it and the page falls back to sliders decoded on the server.
"""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import streamlit as st

from explorer.onnx_export import decoder_export
from ui.catalog import ROOT, checkpoints, loaded_model, model_version
from ui.plots import CLASS_COLOURS, shared_ranges

HERE = Path(__file__).resolve().parent
STATIC = ROOT / "static"
ORT_DIR = STATIC / "ort"
ONNX_DIR = STATIC / "onnx"
STATIC_URL = "app/static"  # where Streamlit serves STATIC, relative to the app's base URL
ORT_FILES = {  # onnxruntime-web 1.30.0 (static/ort/README.md): file -> SHA-256
    "ort.wasm.bundle.min.mjs": "11e64bd8ffe11bd1a2a2f0d6275fdfbbba7262f0b76b99b53d228a8a22ef3d90",
    "ort-wasm-simd-threaded.mjs": "e13f7f94fc51b4ca72b12faeb1ee95f4ace6dfbc8939bc718aabdc0a27c4299b",
    "ort-wasm-simd-threaded.wasm": "3398c10d07d229bd91b364548e130e0e51a8e5704b88c7c083ebbeb78842dee2",
}
MAP_SIZE = (360, 300)  # px, the map of encoder means (width, height)

_PAD = st.components.v2.component("latent_explorer.latent_pad", css=(HERE / "latent_pad.css").read_text(),
                                  js=(HERE / "latent_pad.js").read_text(), isolate_styles=False)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


@st.cache_resource(show_spinner="Exporting the decoder to ONNX for the browser (once per checkpoint) ...",
                   max_entries=128)
def _export(dataset: str, name: str, version: tuple) -> str:
    path = decoder_export(checkpoints(dataset)[0][name]["path"], ONNX_DIR, model=loaded_model(dataset, name))
    return f"{STATIC_URL}/onnx/{path.name}"


def decoder_url(dataset: str, name: str) -> str:
    """URL (relative to the app's base) of the model's decoder as ONNX, exported on first use
    (:func:`explorer.onnx_export.decoder_export`) and cached per checkpoint version.

    Raises:
        CheckpointError: the checkpoint cannot be loaded.
        OSError: ``static/onnx/`` cannot be written.
    """
    return _export(dataset, name, model_version(dataset, name))


@st.cache_data(show_spinner=False, max_entries=64)
def map_data(dataset: str, name: str, projection: str, n: int, classes: tuple[str, ...], title: str,
             version: tuple) -> dict:
    """The map the pad draws once: the first ``n`` test encoder means in ``projection`` (``identity``
    for d = 2, or ``pca``) as base64 float32, their labels as bytes, the class colours and names, the
    axis ranges, and the PCA mean and components that place z on it in the browser."""
    a = loaded_model(dataset, name).arrays
    xy = a[f"{projection}_test"].numpy()[:n].astype("<f4")
    out = {"xy": _b64(xy), "labels": _b64(a["test_labels"].numpy()[:n].astype(np.uint8)),
           "colours": list(CLASS_COLOURS), "classes": list(classes), "ranges": [list(r) for r in shared_ranges([xy])],
           "width": MAP_SIZE[0], "height": MAP_SIZE[1], "title": title, "clickable": projection == "identity"}
    if projection == "pca":
        out["mean"] = a["pca_mean"].numpy().astype(float).tolist()
        out["components"] = a["pca_components"].numpy().astype(float).tolist()
    return out


def latent_pad(*, key: str, models: list[tuple[str, str, tuple[int, ...]]], z: np.ndarray, z_version: int,
               limit: float, scale: int, per_row: int, map_: dict | None, labels: list[str] | None = None):
    """Mount the pad. ``models``: ``(name, decoder URL, image shape (C, H, W))`` decoding the same z;
    ``z`` ``(d,)`` is applied in the browser whenever ``z_version`` changes (a server-side reset);
    sliders span ``±limit``; images drawn ``scale`` px per pixel; ``per_row`` sliders a row.

    Returns the component's result: ``.z`` (list of d floats, set on each release, else None) and
    ``.fallback`` (the reason, on the run after the browser found it cannot decode, else None).
    """
    d = int(len(z))
    signature = "|".join([*(m[1] for m in models), str(d), str(limit), str(scale), str(per_row),
                          str(map_ is not None and map_["title"])])
    data = {"ort": f"{STATIC_URL}/ort/ort.wasm.bundle.min.mjs", "wasm_dir": f"{STATIC_URL}/ort/",
            "models": [{"name": n, "url": u, "shape": list(s)} for n, u, s in models], "d": d,
            "z": [float(v) for v in z], "z_version": int(z_version), "limit": float(limit), "step": 0.01,
            "scale": int(scale), "per_row": int(per_row), "labels": labels or [f"z{i + 1}" for i in range(d)],
            "map": map_, "signature": signature}
    return _PAD(key=key, data=data, default={"z": None}, on_z_change=lambda: None, on_fallback_change=lambda: None)
