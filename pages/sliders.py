"""Sliders: one slider per latent dimension, decoded live by one or more models; the point you
are at on the model's map; and interpolation between two test images (PNG strip and GIF)."""
import math
import time

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from explorer.interpolation import interpolate
from explorer.projection import to_plane
from ui import state
from ui.catalog import checkpoints, get_model, model_version, safe_dataset_images
from ui.common import (axis_titles, class_names, columns_for, current_dataset, ensure_navigation, presenting,
    shown_scale, to_grid, to_image, to_png)
from ui.export import chart, gif_bytes, picture
from ui.plots import is_latent_plane, latent_scatter, pin_points

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


c1, c2, c3 = st.columns([2, 2, 1])
c1.radio("Start from", ["prior mean", "test image"], horizontal=True, key="sliders_start", on_change=reset_sliders)
c2.number_input(f"Test image index (of the {n_stored:,} stored)", 0, n_stored - 1, "min",  # "min": a link may set it
                key="sliders_index", on_change=reset_sliders)
c3.button("Reset sliders", on_click=reset_sliders)
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
    index = int(st.session_state.get("sliders_index", 0)) if st.session_state.get("sliders_start") == "test image" \
        else None
    state.publish("sliders", models=[name, *compare], index=index, z=[float(v) for v in z])
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


slider_panel()

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
