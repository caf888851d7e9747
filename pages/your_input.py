"""Your input: draw a digit or upload an image; every chosen model encodes it, pins it on its map
and decodes it, side by side."""
import numpy as np
import streamlit as st
import torch

from explorer.projection import to_plane
from ui import state
from ui.catalog import get_model
from ui.common import (PROJECTIONS, axes_caption, axis_titles, class_names, columns_for, current_dataset,
    ensure_navigation, pick_models, share_axes_toggle, shown_scale, to_grid, to_image, to_png)
from ui.export import chart, picture
from ui.inputs import draw, upload
from ui.plots import is_latent_plane, latent_scatter, panel_ranges, pin_points

ensure_navigation()
dataset = current_dataset()
st.title("Your input: draw or upload")
st.caption("Draw on the canvas or upload a PNG/JPEG. It is converted to the dataset's format (each step is listed), "
           "encoded by every chosen model (the encoder mean μ(x); LDC-VAE: the mean of its noise-input encoder's "
           "particles), pinned as a star on each model's map of 2,000 test encoder means, and decoded side by side.")
names = pick_models(dataset, key="input_models")
c1, c2, c3 = st.columns([2, 3, 1])
source = c1.radio("Input", ["draw", "upload"], horizontal=True, key="input_source")
state.restore("input_projection", "projection", allowed=list(PROJECTIONS))
projection = c2.radio("Projection", list(PROJECTIONS), format_func=PROJECTIONS.get, horizontal=True,
                      key="input_projection")
share = share_axes_toggle(c3, "input_share_axes")
state.publish("your_input", models=names, projection=projection, share_axes=share or None)

got = draw(dataset, key="input_canvas") if source == "draw" else upload(dataset, key="input_upload")
models = [(n, m) for n in names if (m := get_model(dataset, n)) is not None]
if got is None or not models:
    if got is None:
        st.caption("Draw something or upload an image to encode it.")
    st.stop()
x, label = got  # (1, C, H, W)

with torch.no_grad():
    codes = {n: m.encode(x) for n, m in models}
    recons = {n: m.decode(codes[n]) for n, m in models}
projs = {n: projection if f"{projection}_test" in m.arrays else "pca" for n, m in models}
pins = {n: to_plane(m.arrays, codes[n], projs[n]) for n, m in models}
ranges, shared = panel_ranges({n: (projs[n], np.concatenate([m.arrays[f"{projs[n]}_test"].numpy(), pins[n]]))
                               for n, m in models}, share)

st.subheader("Input and reconstructions")
picture(to_png(to_grid(torch.cat([x] + list(recons.values())), nrow=len(models) + 1, scale=4)),
        f"{label} (converted), then decode(encode(x)) by " + ", ".join(recons), key="input_recons",
        filename=f"{dataset}-your-input-reconstructions")
sse = {n: float((recons[n] - x).pow(2).sum()) for n in recons}
st.caption("‖x − x′‖² (per-image sum): " + ", ".join(f"{n} {v:.1f}" for n, v in sse.items()))

st.subheader("Where each model puts it")
if (note := axes_caption(share, shared)) is not None:
    st.caption(note)
cols = st.columns(columns_for(len(models), min(len(models), 3)))
for k, (name, model) in enumerate(models):
    a, p = model.arrays, projs[name]
    fig = latent_scatter(a[f"{p}_test"].numpy(), a["test_labels"].numpy(), class_names(dataset),
                         title=f"{name} (d = {model.latent_dim})", axis_titles=axis_titles(p), ranges=ranges[name],
                         height=360, equal_aspect=is_latent_plane(p, model.latent_dim), point_opacity=0.35)
    pin_points(fig, pins[name], [label], name=label)
    with cols[k % len(cols)]:
        chart(fig, key=f"input_map_{name}", filename=f"{dataset}-your-input-{name}-{p}")
        st.image(to_image(recons[name][0], scale=shown_scale(4)), caption=f"x′ — {name}", output_format="PNG")
        if p != projection:
            st.caption(f"{PROJECTIONS[projection]} is not available for {name}; showing PCA.")
if projection == "umap":
    st.caption("UMAP's fitted model is not stored: the star sits at the weighted mean of the UMAP positions of its "
               "15 nearest test encoder means (where UMAP's own transform starts).")
