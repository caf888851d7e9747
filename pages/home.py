"""Home: what is shipped, with each checkpoint's metrics."""
import pandas as pd
import streamlit as st

from ui import state
from ui.common import DATASETS, checkpoint_dir, checkpoints, ensure_navigation

ensure_navigation()
state.publish("home")

st.title("Latent Explorer")
st.markdown(
    "Where does each model's **encoder** put real data, where does its **prior** (or an ex-post sampler) put "
    "generated codes, and what lives in the gaps? Pick a view on the left: **Coverage** (prior vs encoder "
    "means), **Sliders** (decode any latent vector), **Drift** (z → x′ → z′), **Samplers** (prior, GMM, "
    "LDC-VAE's sampler net), **Particle flow** (SVGD towards one image's Gibbs posterior) and **Imaginings** "
    "(an LSR-GAN generator dreaming from a frozen VAE's codes). **Your input** encodes a digit you draw or "
    "upload with every chosen model. Every view's state is in its URL: **Copy link to this view** in the "
    "sidebar shares it; **Presentation mode** enlarges everything for a talk.")

COLUMNS = {"test_mse": "test MSE (sum/img)", "kl": "KL (nats)", "drift_kl": "drift KL (nats)", "drift_sq": "drift ‖z′−z‖²",
           "active_units": "active units", "sigma2": "σx²"}


def metrics_table(ok: dict) -> pd.DataFrame:
    rows = []
    for name, h in sorted(ok.items()):
        m = h["meta"].get("metrics", {})
        cov = m.get("coverage", {})
        rows.append({"model": name, "family": h["family"], "d": h["config"].get("latent_dim"),
                     **{label: m.get(key) for key, label in COLUMNS.items()},
                     "prior coverage": cov.get("coverage"), "prior density": cov.get("density"),
                     "MMD²": cov.get("mmd"), "epochs": h["meta"].get("train", {}).get("epochs"),
                     "trained on": h["meta"].get("device")})
    return pd.DataFrame(rows)


for dataset in DATASETS:
    st.subheader(dataset)
    ok, broken = checkpoints(dataset)
    for name, err in broken.items():
        st.warning(f"{name}: {err}")
    if not ok:
        st.info(f"No checkpoints in {checkpoint_dir() / dataset}.")
        continue
    st.dataframe(metrics_table(ok), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.4g") for c in
                                [*COLUMNS.values(), "prior coverage", "prior density", "MMD²"]})
st.caption("Metrics are computed by `python -m explorer.evaluate` at train time on the 10k test set; coverage "
           "numbers compare 2,000 prior samples with the encoder means of 2,000 test images in the full latent "
           "space (k = 5).")
