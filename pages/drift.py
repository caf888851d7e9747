"""Drift: z -> x' = decode(z) -> z' = encode(x'), drawn as arrows; drift KL side by side."""
import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from ui import state
from ui.catalog import checkpoints, get_model, safe_dataset_images
from ui.common import (PROJECTIONS, axes_caption, axis_titles, class_names, columns_for, current_dataset,
    ensure_navigation, pick_models, share_axes_toggle, to_grid, to_png)
from ui.export import chart, picture
from ui.inspect import show_selection, sticky_selection
from ui.plots import drift_arrows, is_latent_plane, latent_scatter, log_ticks, mark_selected, panel_ranges

ensure_navigation()
dataset = current_dataset()
st.title("Encode / decode drift")
st.caption("For each chosen test image: its encoder mean z, the reconstruction x′ = decode(z), and z′ = encode(x′). "
           "A consistent encoder–decoder pair keeps z′ on z (seed 003, Fig. 2).")
names = pick_models(dataset, key="drift_models")
c1, c2, c3 = st.columns([2, 3, 1])
state.restore("drift_projection", "projection", allowed=list(PROJECTIONS))
projection = c1.radio("Projection", list(PROJECTIONS), format_func=PROJECTIONS.get, horizontal=True,
                      key="drift_projection")
state.restore("drift_images", "images", state.csv_ints, allowed=range(2000), describe="test image indices 0..1999")
chosen = c2.multiselect("Test images (index among the 2,000 stored)", list(range(2000)),
                        default=None if "drift_images" in st.session_state else [0, 1, 2, 3, 4],  # a link set it
                        key="drift_images")
share = share_axes_toggle(c3, "drift_share_axes")
state.publish("drift", models=names, projection=projection, images=sorted(chosen), share_axes=share or None)
models = [(n, m) for n in names if (m := get_model(dataset, n)) is not None]
if not models:
    st.stop()
ok, _ = checkpoints(dataset)

# Per-model drift on the full test set (from the checkpoint's metrics) side by side. drift KL needs a
# Gaussian encoder; with an implicit one (LDC-VAE) in the set, every model shows ||z' - z||^2 instead.
use_kl = all(m.gaussian_encoder for _, m in models)
key, unit = ("drift_kl", "drift KL (nats)") if use_kl else ("drift_sq", "‖z′ − z‖²")
title = ("mean KL(q(z′|x′) ‖ q(z|x)) on the 10k test set" if use_kl else
         "mean ‖z′ − z‖² on the 10k test set (drift KL is undefined for the implicit LDC-VAE encoder)")
st.caption(f"Measure shown: **{unit}**" + ("" if use_kl else
           ", for every model, so the bars compare; divided by the model's latent spread E‖μ − E[μ]‖² (the total "
           "variance of its test encoder means), since the models' codes live on different scales, with the raw "
           "value in brackets.") + " Log scale.")
vals = {n: ok[n]["meta"].get("metrics", {}).get(key) for n, _ in models}
spread = {n: float((m.arrays["test_mu"] - m.arrays["test_mu"].mean(0)).pow(2).sum(1).mean()) for n, m in models}
shown = {n: (v if use_kl else v / spread[n]) if v is not None else None for n, v in vals.items()}
text = {n: "n/a" if v is None else f"{shown[n]:.3g}" if use_kl else f"{shown[n]:.3g} (raw {v:.3g})"
        for n, v in vals.items()}
bar = go.Figure(go.Bar(x=list(shown), y=list(shown.values()), text=list(text.values()), textposition="outside",
                       cliponaxis=False))
bar.update_layout(height=280, margin=dict(l=10, r=10, t=40, b=10),
                  yaxis=dict(type="log", title=unit if use_kl else "‖z′ − z‖² / spread"),
                  title=dict(text=title, font=dict(size=14)))
positive = [v for v in shown.values() if v is not None and v > 0]
if positive:  # 1-2-5 ticks labelled in full: plotly's default labels 0.5 as a bare "5" under "1"
    ticks, labels = log_ticks(min(positive) / 2, max(positive) * 2, max_ticks=8)  # the axis pads the bars
    bar.update_yaxes(tickvals=ticks, ticktext=labels)
chart(bar, key="drift_bar", filename=f"{dataset}-drift-bars")


def per_image_drift(name: str, a: dict) -> np.ndarray:
    """The shown drift measure per stored test image, ``(n,)`` (‖z′ − z‖² divided by the model's spread)."""
    if use_kl:
        return a["drift_kl"].numpy()
    return (a["drift_mu"] - a["test_mu"]).pow(2).sum(1).numpy() / spread[name]


idx = np.array(sorted(chosen), dtype=int)
projs = {n: projection if f"{projection}_test" in m.arrays else "pca" for n, m in models}
ranges, shared = panel_ranges({n: (projs[n], m.arrays[f"{projs[n]}_test"].numpy()) for n, m in models}, share)
if (note := axes_caption(share, shared)) is not None:
    st.caption(note)
st.caption(f"Each map's title: the mean {'drift KL' if use_kl else '‖z′ − z‖² / spread'} of the chosen images. "
           "Rings: z, labelled with the test-image index; diamonds: z′ (under the ring when the drift is small).")
cols = st.columns(columns_for(len(models), min(len(models), 3)))
marked = sticky_selection("drift", [f"drift_{name}" for name, _ in models])
for k, (name, model) in enumerate(models):
    a, proj = model.arrays, projs[name]
    fig = latent_scatter(a[f"{proj}_test"].numpy(), a["test_labels"].numpy(), class_names(dataset),
                         title=f"{name}: {float(per_image_drift(name, a)[idx].mean()) if len(idx) else 0:.3g}",
                         axis_titles=axis_titles(proj), ranges=ranges[name], height=360,
                         equal_aspect=is_latent_plane(proj, model.latent_dim), point_opacity=0.25)
    mark_selected(fig, a[f"{proj}_test"].numpy(), marked)
    if len(idx):
        drift_arrows(fig, a[f"{proj}_test"].numpy()[idx], a[f"{proj}_drift"].numpy()[idx], labels=idx)
    with cols[k % len(cols)]:
        chart(fig, key=f"drift_{name}", filename=f"{dataset}-drift-{name}-{proj}", on_select="rerun")
        if proj != projection:
            st.caption(f"{PROJECTIONS[projection]} is not available for {name}; showing PCA.")

data = safe_dataset_images(dataset)
if data is not None and len(idx):
    st.subheader("x and its reconstructions x′")
    rows = [torch.from_numpy(data[0][idx])]
    with torch.no_grad():
        rows += [m.decode(m.arrays["test_mu"][idx]) for _, m in models]
    picture(to_png(to_grid(torch.cat(rows), nrow=len(idx), scale=3)),
            "rows: test images, then x′ for " + ", ".join(n for n, _ in models), key="drift_recons",
            filename=f"{dataset}-drift-reconstructions")
show_selection(dataset, models, marked, key="drift")
