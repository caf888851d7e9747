"""Sliders: one slider per latent dimension, decoded live by one or more models; the point you
are at on the model's map; and interpolation between two test images (PNG strip and GIF)."""
import math
import time

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from explorer.interpolation import interpolate
from explorer.io import CheckpointError
from explorer.projection import to_plane
from ui import state
from ui.catalog import checkpoints, get_model, loaded_model, model_version, safe_dataset_images
from ui.common import (axis_titles, class_names, columns_for, current_dataset, ensure_navigation, presenting,
    shown_scale, to_grid, to_image, to_png)
from ui.export import chart, gif_bytes, picture
from ui.latent_pad import decoder_url, latent_pad, map_data
from ui.plots import is_latent_plane, latent_scatter, manifold_figure, pin_points, shared_ranges

ensure_navigation()

dataset = current_dataset()
st.title("Latent sliders")
ok, broken = checkpoints(dataset)
if not ok:
    st.info(f"No checkpoints for {dataset}.")
    st.stop()
names = sorted(ok)
model_key = f"sliders_model_{dataset}"
linked = state.restore_first(model_key, "models", allowed=names)  # models=A,B,C: A shown, B and C compared
default = names.index("vae-2d") if "vae-2d" in names else 0
name = st.selectbox("Model", names, index=None if model_key in st.session_state else default, key=model_key)
model = get_model(dataset, name)
if model is None:
    st.stop()
d = model.latent_dim
same_d = [n for n in names if n != name and ok[n]["config"].get("latent_dim") == d]
compare_key = f"sliders_compare_{dataset}_{name}"
if linked[1:] and compare_key not in st.session_state:
    st.session_state[compare_key] = [n for n in linked[1:] if n in same_d]
    if other_d := [n for n in linked[1:] if n not in same_d]:
        st.warning(f"URL parameter models: {state.escape_md(', '.join(map(repr, other_d)))} not compared with "
                   f"{state.escape_md(name)}: they decode other latent sizes; models with d = {d}: "
                   f"{state.escape_md(', '.join(same_d) or 'none')}")
compare = st.multiselect(f"Decode the same z with (models with d = {d})", same_d, key=compare_key,
                         placeholder="add models to compare side by side")
prefix = f"z_{dataset}_{name}_"
n_stored = len(model.arrays["test_mu"])
if "index" in state.capture() and "sliders_start" not in st.session_state:
    st.session_state["sliders_start"] = "test image"  # a link that names a test image starts from it
state.restore("sliders_index", "index", int, allowed=range(n_stored), describe=f"0..{n_stored - 1}")


def start_code() -> np.ndarray:
    if st.session_state.get("sliders_start", "prior mean") == "test image":
        idx = int(st.session_state.get("sliders_index", 0))
        return model.arrays["test_mu"][idx].numpy()
    return np.zeros(d, dtype=np.float32)


def reset_sliders():
    for i, v in enumerate(start_code()):
        st.session_state[prefix + str(i)] = float(np.round(v, 2))
    st.session_state["_pad_z_version"] = st.session_state.get("_pad_z_version", 0) + 1  # the pad takes this z


c1, c2, c3, c4 = st.columns([2, 2, 1, 2])
c1.radio("Start from", ["prior mean", "test image"], horizontal=True, key="sliders_start", on_change=reset_sliders)
c2.number_input(f"Test image index (of the {n_stored:,} stored)", 0, n_stored - 1, "min",  # "min": a link may set it
                key="sliders_index", on_change=reset_sliders)
c3.button("Reset sliders", on_click=reset_sliders)
state.restore("sliders_in_browser", "browser", parse=lambda r: r.lower() not in ("0", "false", "no"))
st.session_state.setdefault("sliders_in_browser", True)
c4.toggle("Decode in the browser", key="sliders_in_browser",
          help="The images follow the mouse while you drag (onnxruntime-web in this browser, served by the app). "
               "Off: the server decodes, on release.")
limit = float(max(4, math.ceil(float(np.abs(model.arrays["test_mu"].numpy()).max()))))
keys = [prefix + str(i) for i in range(d)]
if keys[0] not in st.session_state:
    reset_sliders()
    state.restore_vector(keys, "z", -limit, limit)
proj = "identity" if "identity_test" in model.arrays else "pca"
MAP_POINTS = 1000  # encoder means behind the live point (the stored test set is in random order)


def map_figure(z: np.ndarray) -> go.Figure:
    """The model's map of 1,000 test encoder means with the current z as a star.

    Built once per session and model (``st.session_state``); a slider move only moves the star,
    which is far cheaper than building or copying a 2,000-point figure (bench/app_latency.py).
    """
    key = ("_sliders_map", dataset, name, model_version(dataset, name))
    xy = to_plane(model.arrays, z[None], proj)
    fig = st.session_state.get("_sliders_map")
    if fig is None or st.session_state.get("_sliders_map_key") != key:
        a = model.arrays
        n = MAP_POINTS
        fig = latent_scatter(a[f"{proj}_test"].numpy()[:n], a["test_labels"].numpy()[:n], class_names(dataset),
                             title=f"where z is: {name}, {'true plane' if proj == 'identity' else 'PCA'} of "
                                   "encoder means", axis_titles=axis_titles(proj), height=330,
                             equal_aspect=is_latent_plane(proj, model.latent_dim), point_opacity=0.35)
        pin_points(fig, xy, ["z"], name="current z", colour="crimson")
        st.session_state["_sliders_map"], st.session_state["_sliders_map_key"] = fig, key
    else:
        fig.data[-1].x, fig.data[-1].y = xy[:, 0], xy[:, 1]
    return fig


def decoded(m, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return to_image(m.decode(torch.from_numpy(z)[None])[0], scale=shown_scale(8))


def publish_view(z: np.ndarray) -> int | None:
    """Write this view (models, test image, z, decoding path) to the URL; returns the test-image index
    the view starts from, or None when it starts from the prior mean."""
    index = int(st.session_state.get("sliders_index", 0)) if st.session_state.get("sliders_start") == "test image" \
        else None
    state.publish("sliders", models=[name, *compare], index=index, z=[float(v) for v in z],
                  browser=None if st.session_state.get("sliders_in_browser", True) else 0)
    return index


@st.fragment
def slider_panel():
    """Sliders, decoded images and the live point; a slider move reruns only this fragment.
    Its server time is kept in ``st.session_state["_sliders_panel_ms"]`` for bench/app_latency.py."""
    t0 = time.perf_counter()
    wide = len(compare) >= 2 or presenting()
    if wide:  # eight sliders a row, and a row of decoded images under them, one column per model
        left, right = st.container(), st.container()
    else:
        left, right = st.columns([3, 2] if compare else [3, 1])
    per_row = 8 if wide else 4
    with left:
        cols = st.columns(per_row)
        z = np.array([cols[i % per_row].slider(f"z{i + 1}", -limit, limit, step=0.01, key=keys[i])
                      for i in range(d)], dtype=np.float32)
    index = publish_view(z)
    shown = [(name, model)] + [(n, m) for n in compare if (m := get_model(dataset, n)) is not None]
    with right:
        cols = st.columns(columns_for(len(shown), len(shown) if len(compare) >= 2 else min(len(shown), 4)))
        for k, (n, m) in enumerate(shown):
            cols[k % len(cols)].image(decoded(m, z), caption=f"decode(z) — {n}", output_format="PNG")
        base = getattr(model, "base", None)  # an LSR-GAN: the same z through its frozen VAE's decoder
        if base is not None:
            st.image(decoded(base, z), output_format="PNG",
                     caption=f"VAE decoder D(z) — {ok[name]['config']['base_path'].rsplit('/', 1)[-1]}")
        if index is not None:
            data = safe_dataset_images(dataset)
            if data is not None:
                st.image(to_image(data[0][index], scale=shown_scale(4)), caption=f"test image {index}", output_format="PNG")
    chart(map_figure(z), key="sliders_map", filename=f"{dataset}-{name}-where-z-is")
    st.session_state["_sliders_panel_ms"] = (time.perf_counter() - t0) * 1000


def traversal_grid_png(z: np.ndarray, rows: int) -> tuple[bytes, list[str]]:
    """The classic latent traversal (β-VAE's figure): one row per dimension, the ``rows`` dimensions with
    the largest variance of the encoder means first (the active-units statistic), columns z_i = -3 ... 3
    with the other coordinates at z. Cached per model and z."""
    return _traversal(dataset, name, tuple(float(v) for v in np.round(z, 2)), rows, model_version(dataset, name))


@st.cache_data(show_spinner=False, max_entries=256)
def _traversal(dataset: str, name: str, z: tuple, rows: int, version: tuple) -> tuple[bytes, list[str]]:
    m = loaded_model(dataset, name)
    var = m.arrays["test_mu"].numpy().var(axis=0)
    order = np.argsort(-var, kind="stable")[:rows]
    values = np.linspace(-3, 3, TRAVERSAL_STEPS, dtype=np.float32)
    codes = np.repeat(np.asarray(z, dtype=np.float32)[None], len(order) * len(values), axis=0)
    for r, i in enumerate(order):
        codes[r * len(values):(r + 1) * len(values), i] = values
    with torch.no_grad():
        images = m.decode(torch.from_numpy(codes))
    labels = [f"z{i + 1} (Var {var[i]:.2f})" for i in order]
    return to_png(to_grid(images, nrow=len(values), scale=shown_scale(2))), labels


TRAVERSAL_STEPS = 9


@st.fragment
def pad_panel():
    """The latent pad (ui/latent_pad.py): decoded in the browser while dragging; this fragment reruns
    only on release (the link, the traversal grid)."""
    shown = [(name, model)] + [(n, m) for n in compare if (m := get_model(dataset, n)) is not None]
    base = ok[name]["config"].get("base_path")  # an LSR-GAN: its frozen VAE decodes the same z beside G(z)
    base_name = base.rsplit("/", 1)[-1].removesuffix(".safetensors") if base else None
    if base_name in ok and base_name not in dict(shown) and (bm := get_model(dataset, base_name)) is not None:
        shown.append((base_name, bm))
    try:
        urls = [(n, decoder_url(dataset, n), tuple(m.image_shape)) for n, m in shown]
    except (CheckpointError, OSError) as e:  # a decoder that cannot be exported: this page decodes on the server
        st.session_state["_pad_fallback"] = f"no ONNX export: {e}"
        st.rerun(scope="app")
    z = np.array([st.session_state[k] for k in keys], dtype=np.float32)
    wide = len(compare) >= 2 or presenting()
    title = f"where z is: {name}, {'true plane' if proj == 'identity' else 'PCA'} of encoder means"
    result = latent_pad(key=f"pad_{dataset}_{name}", models=urls, z=z,
                        z_version=st.session_state.get("_pad_z_version", 0), limit=limit,
                        scale=shown_scale(6), per_row=8 if wide else 4,
                        map_=map_data(dataset, name, proj, MAP_POINTS, tuple(class_names(dataset)), title,
                                      model_version(dataset, name)))
    if result.fallback:
        st.session_state["_pad_fallback"] = str(result.fallback)
        st.rerun(scope="app")
    if result.z is not None and len(result.z) == d:
        released = np.clip(np.asarray(result.z, dtype=np.float32), -limit, limit)
        if not np.allclose(released, z):
            for k, v in zip(keys, released):
                st.session_state[k] = float(np.round(v, 2))
            z = released
    index = publish_view(z)
    if index is not None and (data := safe_dataset_images(dataset)) is not None:  # what the pad started from
        st.image(to_image(data[0][index], scale=shown_scale(4)), caption=f"test image {index}", output_format="PNG")
    t1, t2 = st.columns([3, 1])
    rows = t2.number_input("Rows", 1, d, min(d, 8), key=f"traversal_rows_{dataset}_{name}",
                           help="Dimensions shown, most active first")
    png, labels = traversal_grid_png(z, int(rows))
    t1.markdown(f"**Latent traversal of {state.escape_md(name)}** from the released z: rows {', '.join(labels)}; "
                f"columns z_i = −3 … 3 ({TRAVERSAL_STEPS} steps), the other coordinates as z.")
    picture(png, "latent traversal", key="traversal", filename=f"{dataset}-{name}-traversal")


MANIFOLD_TILES = 20  # decoded images per side of the d = 2 manifold


@st.cache_data(show_spinner="Decoding the manifold ...", max_entries=32)
def manifold(dataset: str, name: str, version: tuple) -> tuple[bytes, tuple]:
    """A d = 2 model's decoder on a MANIFOLD_TILES² grid of tile centres over its encoder means' range:
    (PNG, one pixel per image pixel, top row at the largest z2; ((z1 range), (z2 range)))."""
    m = loaded_model(dataset, name)
    (x0, x1), (y0, y1) = ranges = shared_ranges([m.arrays["identity_test"].numpy()])
    n = MANIFOLD_TILES
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    ys = y1 - (np.arange(n) + 0.5) * (y1 - y0) / n
    codes = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)  # row r: z2 = ys[r]
    with torch.no_grad():
        images = m.decode(torch.from_numpy(codes))
    c, h, w = images.shape[1:]
    grid = images.reshape(n, n, c, h, w).permute(2, 0, 3, 1, 4).reshape(c, n * h, n * w)
    return to_png(to_image(grid, 1)), ranges


if st.session_state.get("sliders_in_browser", True) and not st.session_state.get("_pad_fallback"):
    pad_panel()
else:
    if st.session_state.get("_pad_fallback") and st.session_state.get("sliders_in_browser", True):
        st.info("This browser cannot decode here (" + state.escape_md(st.session_state["_pad_fallback"]) +
                "): the sliders below decode on the server, when you release them.")
    slider_panel()

if d == 2 and "identity_test" in model.arrays:
    st.subheader("Decoded manifold")
    png, ranges = manifold(dataset, name, model_version(dataset, name))
    a = model.arrays
    fig = manifold_figure(png, ranges, a["identity_test"].numpy()[:MAP_POINTS], a["test_labels"].numpy()[:MAP_POINTS],
                          class_names(dataset), title=f"{name}: decoder on a {MANIFOLD_TILES}×{MANIFOLD_TILES} grid of "
                          "the latent plane, encoder means on top")
    chart(fig, key="manifold", filename=f"{dataset}-{name}-manifold")
    st.caption("Each tile is decode(z) at its centre (Kingma & Welling 2014, Fig. 4); the points are 1,000 test "
               "images' encoder means, coloured by class (click a class in the legend to hide it). In the latent "
               "pad above, click the plane to decode any point.")

st.divider()
st.subheader("Interpolation between two test images")
i1, i2, i3 = st.columns(3)
a = i1.number_input("From test image", 0, n_stored - 1, 0, key="interp_a")
b = i2.number_input("To test image", 0, n_stored - 1, 1, key="interp_b")
steps = i3.slider("Steps", 3, 16, 10, key="interp_steps")


@st.cache_data(show_spinner=False, max_entries=512)
def interpolation(dataset: str, name: str, a: int, b: int, steps: int, method: str, _model) -> tuple[bytes, list]:
    """The decoded interpolation as a PNG strip and as GIF frames (uint8 pictures), cached so
    reruns for slider moves elsewhere cost nothing."""
    z0, z1 = _model.arrays["test_mu"][a], _model.arrays["test_mu"][b]
    with torch.no_grad():
        imgs = _model.decode(interpolate(z0, z1, steps, method))
    return to_png(to_grid(imgs, nrow=steps, scale=3)), [to_image(x, scale=6) for x in imgs]


for method in ("linear", "spherical"):
    png, frames = interpolation(dataset, name, int(a), int(b), int(steps), method, model)
    stem = f"{dataset}-{name}-{method}-{int(a)}-{int(b)}"
    picture(png, f"{method} interpolation, {int(steps)} steps", key=f"interp_{method}", filename=stem)
    st.download_button("GIF", lambda frames=frames: gif_bytes(frames), file_name=f"{stem}.gif", mime="image/gif",
                       key=f"gif_{method}", icon=":material/animation:", on_click="ignore", type="tertiary",
                       help="Download the interpolation as a looping GIF")

