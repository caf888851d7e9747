"""Coverage: prior (or ex-post) samples against the aggregate posterior (one z ~ q(z|x) per test image)
or the encoder means, side by side across models."""
import streamlit as st

from ui import state
from ui.catalog import (REFERENCES, UMAP_PLACEMENT_NOTE, coverage_numbers, get_model, model_version,
    placed_approximately)
from ui.common import (PROJECTIONS, SAMPLER_LABELS, axes_caption, columns_for,
    coverage_markdown, current_dataset, ensure_navigation, pick_models, presenting, share_axes_toggle)
from ui.export import chart
from ui.figures import coverage_map, coverage_ranges
from ui.inspect import show_selection, sticky_selection

ensure_navigation()
dataset = current_dataset()
st.title("Coverage: prior vs encoder")
st.caption("2,000 test images' codes (coloured by class) and 2,000 codes from the chosen sampler, in one 2-D "
           "projection per model, fitted on the encoder means. By default the codes are one draw z ~ q(z|x) per "
           "test image, a sample of the aggregate posterior q(z) that the prior should match; the encoder means "
           "are an option (they sit near 0 on inactive units, where q(z|x) is near N(0, 1)). Filled points are "
           "covered by the sampler (a sampler code inside their 5-NN ball), open ones are not. Each map has its "
           "own axes (PCA maps can share them). Click, box- or lasso-select points in any map: those test images "
           "are ringed in every map and shown below with their reconstructions.")

names = pick_models(dataset, key="coverage_models")
c1, c2, c3 = st.columns([2, 3, 1])
state.restore("coverage_projection", "projection", allowed=list(PROJECTIONS))
projection = c1.radio("Projection", list(PROJECTIONS), format_func=PROJECTIONS.get, horizontal=True,
                      key="coverage_projection")
state.restore("coverage_sampler", "sampler", allowed=list(SAMPLER_LABELS))
sampler = c2.radio("Sampler", list(SAMPLER_LABELS), horizontal=True, key="coverage_sampler",
                   format_func=SAMPLER_LABELS.get)
per_row = c3.number_input("Plots per row", 1, 6, 3, key="coverage_per_row")
state.restore("coverage_reference", "reference", allowed=list(REFERENCES))
r1, r2 = st.columns([4, 1])
reference = r1.radio("Test-image codes", list(REFERENCES), format_func=REFERENCES.get, horizontal=True,
                     key="coverage_reference")
share = share_axes_toggle(r2, "coverage_share_axes")
state.publish("coverage", models=names, projection=projection, sampler=sampler,
              reference=None if reference == "draw" else reference, share_axes=share or None)

panels = []
for name in names:
    model = get_model(dataset, name)
    if model is None:
        continue
    proj = projection if f"{projection}_test" in model.arrays else "pca"
    panels.append((name, model, proj, sampler if sampler in model.samplers else "prior"))

if not panels:
    st.stop()
versions = {name: model_version(dataset, name) for name, *_ in panels}
ranges, shared = coverage_ranges(dataset=dataset, panels=tuple((n, p, s) for n, _, p, s in panels), reference=reference,
                                 share=bool(share), versions=tuple(versions.values()))
if (note := axes_caption(share, shared)) is not None:
    st.caption(note)

per_row = columns_for(len(panels), int(per_row))
marked = sticky_selection("coverage", [f"cov_{name}" for name, *_ in panels])  # linked brushing across the maps
for row in range(0, len(panels), per_row):
    cols = st.columns(per_row)
    for col, (name, model, proj, samp) in zip(cols, panels[row:row + per_row]):
        au = model.meta.get("metrics", {}).get("active_units")
        fig = coverage_map(dataset=dataset, name=name, projection=proj, sampler=samp, reference=reference,
                           ranges=ranges[name], marked=tuple(marked), present=presenting(), version=versions[name])
        with col:
            chart(fig, key=f"cov_{name}", filename=f"{dataset}-coverage-{name}-{proj}-{samp}",
                  on_select="rerun", styled=True)
            if proj != projection:
                st.caption(f"{PROJECTIONS[projection]} is not available for {name}; showing PCA.")
            if samp != sampler:
                st.caption(f"{name} has no {SAMPLER_LABELS[sampler]} sampler; showing the prior.")
            st.markdown(coverage_markdown(coverage_numbers(dataset, name, samp, reference)) +
                        (f" · active units **{au}** of {model.latent_dim}" if au is not None else ""))
            st.caption(f"against {REFERENCES[reference]}")
st.caption("Coverage, density (Naeem et al. 2020) and precision, recall (Kynkäänniemi et al. 2019) with k = 5, and "
           "the RBF MMD² (median-heuristic bandwidth), all between the sampler's codes and the chosen test-image "
           "codes in the full d-dimensional latent space, not in the 2-D projection. Active units: Burda et al. "
           "(2016), Cov_x(E[z|x]) > 0.01. GMM-100 and the two-stage VAE come from the model's ex-post sidecar "
           "(`python -m explorer.expost`).")
if any(placed_approximately(m, s, p) for _, m, p, s in panels) or (reference == "draw" and any(
        p == "umap" for _, _, p, _ in panels)):
    st.caption(UMAP_PLACEMENT_NOTE + " The posterior draws are placed the same way.")
show_selection(dataset, [(n, m) for n, m, *_ in panels], marked, key="coverage")
