"""Particle flow: SVGD particles moving from N(0, I) to one test image's Gibbs posterior (LDC-VAE)."""
import numpy as np
import streamlit as st
import torch

from explorer.models.ldc_vae import particle_flow
from explorer.projection import to_plane
from ui import state
from ui.catalog import DEFAULT_FLOW, checkpoints, default_flow, get_model, model_version, safe_dataset_images
from ui.common import axis_titles, current_dataset, ensure_navigation, shown_scale, to_grid, to_image, to_png
from ui.export import chart, picture
from ui.plots import particle_flow_figure

ensure_navigation()
dataset = current_dataset()
st.title("Particle flow: SVGD towards a Gibbs posterior")
st.caption("SVGD particles start from N(0, I) and move towards log p(z|x) = −‖x − D(z)‖²/σ² (seed 000 eq. 13) under the "
           "shipped LDC-VAE decoder, with the RBF kernel and the median heuristic h = med²/log n. Shown in the model's "
           "PCA plane (fitted on the encoder means); press play or drag the step slider.")
ok, _ = checkpoints(dataset)
flows = sorted(n for n, h in ok.items() if h["family"] == "ldc-vae")
if not flows:
    st.info(f"No LDC-VAE checkpoint for {dataset}. Train one with `python train.py --model ldc-vae --dataset {dataset}`.")
    st.stop()
DEFAULT = DEFAULT_FLOW  # the view computed ahead, when the app starts
state.restore_first(f"flow_model_{dataset}", "models", allowed=flows)
state.restore("flow_index", "index", int, allowed=range(2000), describe="0..1999")
with st.form("flow_settings", border=False):
    c1, c2, c3, c4, c5, c6 = st.columns([2, 2, 1, 1, 1, 1.4], vertical_alignment="bottom")
    name = c1.selectbox("Model", flows, key=f"flow_model_{dataset}")
    index = int(c2.number_input("Test image (index among the 2,000 stored)", 0, 1999, "min", key="flow_index"))
    n_particles = int(c3.select_slider("Particles", [16, 32, 64, 128], value=DEFAULT["n_particles"], key="flow_particles"))
    steps = int(c4.select_slider("Steps", [25, 50, 100, 200], value=DEFAULT["steps"], key="flow_steps"))
    step_size = float(c5.select_slider("Step size", [0.01, 0.02, 0.05, 0.1, 0.2], value=DEFAULT["step_size"],
                                       key="flow_step_size"))
    c6.form_submit_button("Run SVGD", type="primary", icon=":material/play_arrow:")
st.caption("Settings apply when you press **Run SVGD** (200 steps of 128 particles take about 20 s on a busy "
           "2-core machine); the default view is computed when the app starts.")
state.publish("particle_flow", models=name, index=index)
model = get_model(dataset, name)
data = safe_dataset_images(dataset)
if model is None or data is None:
    st.stop()


@st.cache_data(show_spinner="Running SVGD ...", max_entries=64)
def flow(dataset: str, name: str, version: tuple, index: int, n_particles: int, steps: int, step_size: float,
         _model, _image: np.ndarray) -> np.ndarray:
    """Trajectory ``(steps + 1, n_particles, d)`` (seed 0)."""
    return particle_flow(_model, torch.from_numpy(_image), n_particles, steps, step_size, seed=0).numpy()


settings = dict(n_particles=n_particles, steps=steps, step_size=step_size)
ahead = default_flow(dataset, name, model_version(dataset, name)) if index == 0 and settings == DEFAULT else None
if ahead is not None:
    with st.spinner("Finishing the default view, computed since the app started ..."):
        traj = ahead.result()
else:
    traj = flow(dataset, name, model_version(dataset, name), index, n_particles, steps, step_size, model,
                data[0][index])
a = model.arrays
plane = lambda z: to_plane(a, z.reshape(-1, z.shape[-1]), "pca").reshape(*z.shape[:-1], 2)  # noqa: E731
fig = particle_flow_figure(plane(traj), a["pca_test"].numpy(), plane(a["test_mu"][index].numpy()[None])[0],
                           title=f"{name}: {n_particles} particles, {steps} steps", axis_titles=axis_titles("pca"))
left, right = st.columns([3, 1])
with left:
    chart(fig, key="flow_plot", filename=f"{dataset}-{name}-particle-flow-{index}")
with right:
    st.image(to_image(data[0][index], scale=shown_scale(5)), caption=f"test image {index}")
    with torch.no_grad():
        z_end = torch.from_numpy(traj[-1][:8])
        recon = model.decode(model.arrays["test_mu"][index:index + 1])
        st.image(to_image(recon[0], scale=shown_scale(5)), caption="decode(encoder mean)")
        picture(to_png(to_grid(model.decode(z_end), nrow=4, scale=2)), "decode(z) of 8 particles at the end",
                key="flow_particles_end", filename=f"{dataset}-{name}-particles-{index}")
    x = torch.from_numpy(data[0][index:index + 1])
    with torch.no_grad():
        sse = [float((model.decode(torch.from_numpy(z)) - x).pow(2).flatten(1).sum(1).mean()) for z in (traj[0], traj[-1])]
    m1, m2 = st.columns(2)
    m1.metric("‖x − D(z)‖², start", f"{sse[0]:.1f}", help="mean over the particles, per-image sum of squares")
    m2.metric("at the end", f"{sse[1]:.1f}", delta=f"{sse[1] - sse[0]:.1f}", delta_color="inverse")
mu = model.arrays["test_mu"]
end_mean = torch.from_numpy(traj[-1]).mean(0)
gap = float((end_mean - mu[index]).norm())
spread = float((mu - mu.mean(0)).pow(2).sum(1).mean().sqrt())
kept = float(np.square(a["pca_components"].numpy() @ (end_mean - mu[index]).numpy()).sum()) / max(gap ** 2, 1e-12)
st.caption(f"Where the particles end, in the full d = {model.latent_dim} latent space: their mean lies "
           f"{gap:.2f} from this image's encoder mean (the star), against a spread of {spread:.2f} of all test "
           f"encoder means (root mean squared distance to their centre). The PCA plane shows {kept:.0%} of that "
           f"gap: the other {model.latent_dim - 2} directions are projected away, so particles that have reached "
           f"the Gibbs posterior need not sit on the star in the plane. The Gibbs posterior uses the model's σ² "
           f"from training ({model.sigma2_estimate():.3g}), and its mode is where D(z) best reconstructs x, which "
           f"is near, not at, the encoder's mean.")
