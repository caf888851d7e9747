"""Home: what is shipped, with each checkpoint's metrics."""
import pandas as pd
import streamlit as st

from ui import state
from ui.catalog import checkpoint_dir, checkpoints
from ui.common import app_datasets, current_dataset, ensure_navigation
from ui.export import chart
from ui.plots import learning_curves, refit_curve

ensure_navigation()

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


def converged_label(meta: dict) -> str:
    """'yes' / 'no' / '' (not recorded) from the checkpoint's stop reason (explorer.training.stop_reason)."""
    reason = meta.get("stop_reason")
    if not isinstance(reason, str):
        return ""
    return "yes" if reason.startswith("converged") else "no"


def metrics_table(ok: dict) -> pd.DataFrame:
    rows = []
    for name, h in sorted(ok.items()):
        m = h["meta"].get("metrics", {})
        cov = m.get("coverage", {})
        rows.append({"model": name, "family": h["family"], "d": h["config"].get("latent_dim"),
                     **{label: m.get(key) for key, label in COLUMNS.items()},
                     "prior coverage": cov.get("coverage"), "prior density": cov.get("density"),
                     "MMD²": cov.get("mmd"),
                     "gmm-10 class entropy": (m.get("sampler_modes") or {}).get("gmm-10", {}).get("class_entropy"),
                     "epochs": len(h["meta"].get("history") or []) or None,
                     "converged": converged_label(h["meta"]),
                     "trained on": h["meta"].get("device")})
    return pd.DataFrame(rows)


for dataset in app_datasets():
    st.subheader(dataset)
    ok, broken = checkpoints(dataset)
    for name, err in broken.items():  # both come from the folder: shown as text, never as markdown
        st.warning(f"Not usable: {state.escape_md(name)}. {state.escape_md(err)}", icon=":material/block:")
    if not ok:
        st.info(f"No checkpoints in {checkpoint_dir() / dataset}.")
        continue
    table = metrics_table(ok)
    numbers = [c for c in table.columns if c not in ("model", "family", "converged", "trained on")]
    st.dataframe(table.style.format("{:.4g}", subset=numbers, na_rep="–"), hide_index=True, width="stretch",
                 placeholder="–")  # "–": not measured for this family (a deterministic encoder has no KL)
st.caption("Metrics are computed by `python -m explorer.evaluate` at train time on the 10k test set; coverage "
           "numbers compare 2,000 prior samples with the encoder means of 2,000 test images in the full latent "
           "space (k = 5).")

st.subheader("Learning curves")
dataset = current_dataset()
ok, _ = checkpoints(dataset)
with_history = sorted(n for n, h in ok.items() if h["meta"].get("history"))
if not with_history:
    state.publish("home")
    st.info(f"No {dataset} checkpoint records a per-epoch history.")
else:
    state.restore(f"home_curves_{dataset}", "model", allowed=with_history)
    name = st.selectbox(f"Model ({dataset}; the dataset is picked in the sidebar)", with_history,
                        key=f"home_curves_{dataset}")
    meta = ok[name]["meta"]
    state.publish("home", model=name)
    chart(learning_curves(meta["history"], (meta.get("train") or {}).get("monitor")), key=f"curves_{dataset}_{name}", filename=f"{dataset}-{name}-learning-curves")
    train = meta.get("train") or {}
    st.caption("Solid: the epoch's mean over training batches; dashed: the same term on the 10k test images after the "
               "epoch (`test_mse` is the per-image squared error of decode(encode(x))). Class entropy, Fréchet distance "
               "(classifier features, against the test images) and coverage are measured on 2,000 samples after each "
               "epoch. The rule (explorer.training): at least the minimum epochs, then stop when the monitored value "
               "improved by less than the tolerance over the last 3 epochs.")
    st.text(f"monitored: {train.get('monitor', 'n/a')}; minimum epochs {train.get('epochs', 'n/a')}, at most "
            f"{train.get('max_epochs') or train.get('epochs', 'n/a')}, tolerance {train.get('tol', 'n/a')}\n"
            f"stop: {meta.get('stop_reason') or 'not recorded (trained before the rule existed)'}")
    refit = meta.get("sampler_refit")
    if isinstance(refit, dict):  # LDC-VAE reading 9: the sampler net was refitted after these epochs
        st.caption("After these epochs the sampler net was refitted on the frozen encoder, towards a GMM of the "
                   "aggregate posterior (reading 9, explorer/models/ldc_refit.py); the per-epoch sampler-net "
                   "values above are from before the refit. Below: the mean log-density under that GMM of 2,000 "
                   "sampler-net draws, every 2,000 steps, and of the GMM's own draws; the lines meet when the "
                   "sampler net draws what the GMM draws.")
        fig = refit_curve(refit.get("curve"))
        if fig is not None:
            chart(fig, key=f"refit_{dataset}_{name}", filename=f"{dataset}-{name}-sampler-refit",
                  config={"displayModeBar": False})
        st.text(f"refit: {refit.get('steps', 'n/a')} SVGD steps, {refit.get('sets', 'n/a')} sets x "
                f"{refit.get('particles', 'n/a')} particles, kernel scale {refit.get('kernel_scale', 'n/a')}, "
                f"lr {refit.get('lr', 'n/a')}, GMM-{refit.get('components', 'n/a')} target, "
                f"{refit.get('seconds', 'n/a')} s\ncommand: {refit.get('command', 'not recorded')}")
