"""Sliders: one slider per latent dimension, decoded live; and interpolation between two test images."""
import math

import numpy as np
import streamlit as st
import torch

from explorer.interpolation import interpolate
from ui.common import (checkpoints, current_dataset, ensure_navigation, get_model, safe_dataset_images, to_grid,
                       to_image, to_png)

ensure_navigation()

dataset = current_dataset()
st.title("Latent sliders")
ok, broken = checkpoints(dataset)
if not ok:
    st.info(f"No checkpoints for {dataset}.")
    st.stop()
names = sorted(ok)
name = st.selectbox("Model", names, index=names.index("vae-2d") if "vae-2d" in names else 0,
                    key=f"sliders_model_{dataset}")
model = get_model(dataset, name)
if model is None:
    st.stop()
d = model.latent_dim
prefix = f"z_{dataset}_{name}_"


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
c2.number_input("Test image index (of the 2,000 stored)", 0, len(model.arrays["test_mu"]) - 1, 0,
                key="sliders_index", on_change=reset_sliders)
c3.button("Reset sliders", on_click=reset_sliders)
if prefix + "0" not in st.session_state:
    reset_sliders()

limit = float(max(4, math.ceil(float(np.abs(model.arrays["test_mu"].numpy()).max()))))


@st.fragment
def slider_panel():
    """Sliders and the decoded image; a slider move reruns only this fragment."""
    left, right = st.columns([3, 1])
    with left:
        cols = st.columns(4)
        z = np.array([cols[i % 4].slider(f"z{i + 1}", -limit, limit, step=0.01, key=prefix + str(i))
                      for i in range(d)], dtype=np.float32)
    with right:
        with torch.no_grad():
            img = model.decode(torch.from_numpy(z)[None])[0]
        st.image(to_image(img, scale=8), caption=f"decode(z) — {name}", output_format="PNG")
        base = getattr(model, "base", None)  # an LSR-GAN: the same z through its frozen VAE's decoder
        if base is not None:
            with torch.no_grad():
                st.image(to_image(base.decode(torch.from_numpy(z)[None])[0], scale=8), output_format="PNG",
                         caption=f"VAE decoder D(z) — {ok[name]['config']['base_path'].rsplit('/', 1)[-1]}")
        if st.session_state.get("sliders_start") == "test image":
            data = safe_dataset_images(dataset)
            if data is not None:
                idx = int(st.session_state.get("sliders_index", 0))
                st.image(to_image(data[0][idx], scale=4), caption=f"test image {idx}", output_format="PNG")


slider_panel()

st.divider()
st.subheader("Interpolation between two test images")
i1, i2, i3 = st.columns(3)
a = i1.number_input("From test image", 0, len(model.arrays["test_mu"]) - 1, 0, key="interp_a")
b = i2.number_input("To test image", 0, len(model.arrays["test_mu"]) - 1, 1, key="interp_b")
steps = i3.slider("Steps", 3, 16, 10, key="interp_steps")


@st.cache_data(show_spinner=False, max_entries=512)
def interpolation_png(dataset: str, name: str, a: int, b: int, steps: int, method: str, _model) -> bytes:
    """Decoded interpolation strip as PNG bytes, cached so slider moves elsewhere cost nothing."""
    z0, z1 = _model.arrays["test_mu"][a], _model.arrays["test_mu"][b]
    with torch.no_grad():
        imgs = _model.decode(interpolate(z0, z1, steps, method))
    return to_png(to_grid(imgs, nrow=steps, scale=3))


for method in ("linear", "spherical"):
    st.image(interpolation_png(dataset, name, int(a), int(b), int(steps), method, model),
             caption=f"{method} interpolation, {int(steps)} steps")
