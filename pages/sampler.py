"""Sampler: decoded samples from every sampler a model offers, with its codes over the encoder means."""
import numpy as np
import streamlit as st
import torch

from ui import state
from ui.catalog import (UMAP_PLACEMENT_NOTE, coverage_numbers, get_model, mode_numbers, model_version,
    placed_approximately, sampler_codes, sampler_xy)
from ui.common import (PROJECTIONS, SAMPLER_LABELS, axis_titles, class_names, columns_for, coverage_markdown,
    current_dataset, ensure_navigation, modes_markdown, pick_models, to_grid, to_png)
from ui.export import chart, picture
from ui.inspect import show_selection, sticky_selection
from ui.plots import class_histogram_bar, finite_number, is_latent_plane, latent_scatter, shared_ranges

PER_ROW = 3  # sampler panels per row

ensure_navigation()
dataset = current_dataset()
st.title("Samplers: prior, ex-post estimates and sampler net")
st.caption("For each model, each sampler it offers: a grid of decoded samples, and the same sampler's 2,000 codes "
           "drawn over the encoder means of 2,000 test images in one shared 2-D projection, with the coverage numbers "
           "against one draw z ~ q(z|x) per test image, a sample of the aggregate posterior (computed in the full "
           "latent space; the Coverage page also offers them against the encoder means). GMM-10, GMM-100 and the two-stage VAE are fitted after training on "
           "the encoder means of the training set (\"ex-post density estimation\", seed 002 §5 after Ghosh et al. "
           "2020; the second-stage VAE of Dai & Wipf 2019 §4; `python -m explorer.expost` fits the last two). "
           "LDC-VAE's sampler net S(ε) is trained with SVGD towards the aggregate posterior, estimated from the "
           "encoder's particles (seed 000, Algorithm 1 steps 5–7 and eq. 11; the readings are in "
           "explorer.models.ldc_vae). Under each grid: the classes the dataset's classifier sees in the 2,000 "
           "decoded samples (dashed: the uniform share; red: a class under 1 %), and the median squared distance "
           "from a sample to its nearest training image beside the same median for test images: far below it "
           "means copies of training images, far above it images unlike any.")
names = pick_models(dataset, key="sampler_models", max_default=2, preferred=("ldc-vae", "vae", "ar-elbo-iso-i"))
c1, c2 = st.columns([3, 1])
state.restore("sampler_projection", "projection", allowed=["pca", "umap"])
projection = c1.radio("Projection", ["pca", "umap"], format_func=PROJECTIONS.get, horizontal=True,
                      key="sampler_projection")
n_show = c2.select_slider("Samples per grid", [16, 36, 64], value=36, key="sampler_grid")
state.publish("sampler", models=names, projection=projection)


def int_or(value, missing: str = "an unrecorded number of") -> str:
    """``value`` as an integer with thousands separators when it is a whole number, else ``missing``."""
    return f"{int(value):,}" if finite_number(value) and abs(value) < 1e15 else missing


@st.cache_data(show_spinner="Decoding samples ...", max_entries=256)
def sample_grid_png(dataset: str, name: str, sampler: str, n: int, version: tuple, _model) -> bytes:
    """The first ``n`` codes of ``sampler`` (stored, or drawn for ex-post samplers) decoded into a grid, as PNG bytes."""
    with torch.no_grad():
        imgs = _model.decode(torch.as_tensor(sampler_codes(dataset, name, sampler)[:n]))
    return to_png(to_grid(imgs, nrow=int(np.sqrt(n)), scale=2))


models = [(n, m) for n in names if (m := get_model(dataset, n)) is not None]
if not models:
    st.stop()
panels, proj = {}, {}
for name, model in models:
    proj[name] = p = projection if f"{projection}_test" in model.arrays else "pca"
    panels[name] = {s: sampler_xy(dataset, name, s, p) for s in model.samplers}
# one range per model, shared by its samplers' panels: each model has its own projection and latent scale
# (LDC-VAE's codes span ~±40, a σx² = 1 VAE's ~±2), so a range shared across models shrinks some to a dot
ranges = {n: shared_ranges([m.arrays[f"{proj[n]}_test"].numpy(), *panels[n].values()]) for n, m in models}
for name, model in models:
    st.subheader(f"{name} (d = {model.latent_dim})")
    a, p = model.arrays, proj[name]
    samplers = list(panels[name])
    per_row = columns_for(len(samplers), PER_ROW)
    for row in range(0, len(samplers), per_row):
        cols = st.columns(per_row)
        for col, s in zip(cols, samplers[row:row + per_row]):
            with col:
                st.markdown(f"**{SAMPLER_LABELS.get(s, s)}**")
                if s == "prior" and not model.prior_in_objective:
                    st.caption(f"{model.family}'s objective has no prior term, so N(0, I) is only the control: its "
                               "draws land where the encoder never put codes, and decode to what the decoder makes "
                               "of that region: the gap LDC-VAE's sampler net (seed 000 §V.B) and the ex-post "
                               "GMMs (Ghosh et al. 2020) exist to avoid.")
                refit = model.meta.get("sampler_refit") if s == "sampler-net" else None
                if isinstance(refit, dict):  # numbers from the file: formatted, never markdown
                    st.caption(f"Refitted after training on the frozen encoder, towards a GMM of its particles "
                               f"(reading 9, explorer.models.ldc_refit): {int_or(refit.get('steps'))} SVGD steps. "
                               "Home shows the refit's curve.")
                picture(sample_grid_png(dataset, name, s, int(n_show), model_version(dataset, name), model),
                        f"decode(z), z from {s}", key=f"grid_{name}_{s}", filename=f"{dataset}-{name}-{s}-samples")
                fig = latent_scatter(a[f"{p}_test"].numpy(), a["test_labels"].numpy(), class_names(dataset),
                                     panels[name][s], sampler=s, axis_titles=axis_titles(p), ranges=ranges[name],
                                     height=320, equal_aspect=is_latent_plane(p, model.latent_dim))
                chart(fig, key=f"sampler_{name}_{s}", filename=f"{dataset}-{name}-{s}-{p}",
                      on_select="rerun")
                st.markdown(coverage_markdown(coverage_numbers(dataset, name, s, "draw")))
                q = mode_numbers(dataset, name, s)
                if q is not None:
                    chart(class_histogram_bar(q["class_hist"], class_names(dataset)), key=f"hist_{name}_{s}",
                          filename=f"{dataset}-{name}-{s}-classes", config={"displayModeBar": False})
                    st.markdown(modes_markdown(q))
    if p != projection:
        st.caption(f"{PROJECTIONS[projection]} is not available for {name}; showing PCA.")
    if any(placed_approximately(model, s, p) for s in samplers):
        st.caption(UMAP_PLACEMENT_NOTE)
    if model.expost is None:
        st.caption(f"{name} has no ex-post sidecar (GMM-100, two-stage VAE): fit it with "
                   f"`python -m explorer.expost checkpoints/{dataset}/{name}.safetensors`.")
show_selection(dataset, models, sticky_selection("samplers", [f"sampler_{n}_{s}" for n, m in models
                                                             for s in m.samplers]), key="samplers")
