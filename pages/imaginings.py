"""Imaginings: what an LSR-GAN generator draws from a frozen VAE's latent codes (seed 004 Fig. 1-3)."""
import numpy as np
import streamlit as st
import torch

from ui import state
from ui.catalog import checkpoints, get_model, results_tables, safe_dataset_images
from ui.common import current_dataset, ensure_navigation, presenting, to_grid, to_png
from ui.export import picture
from ui.inputs import upload

ensure_navigation()
dataset = current_dataset()
st.title("Imaginings: LSR-GAN on a frozen VAE")
st.caption("LSR-GAN (seed 004) trains a GAN generator G against the frozen encoder of a VAE: its loss adds "
           "−λ·log q(z|G(z)) to the usual generator loss (eq. 4), so G(z) must look real *and* encode back to z. "
           "Each row: the input x, the VAE reconstruction D(μ(x)), G(μ(x)), and imaginings G(z) for z drawn from "
           "q(z|x). λ = 0 is the control: a plain GAN on the same prior.")

ok, _ = checkpoints(dataset)
gans = [n for n, h in ok.items() if h["family"] == "lsr-gan"]
if not gans:
    st.info(f"No LSR-GAN checkpoints for {dataset}. Train one with `python train.py --model lsr-gan --dataset "
            f"{dataset} --vae checkpoints/{dataset}/ar-elbo-iso-i.safetensors` (λ = 5e-4, the default).")
    st.stop()
lam_of = {n: float(ok[n]["config"].get("lam") or 0.0) for n in gans}
gans.sort(key=lambda n: (lam_of[n], n))  # the λ = 0 control first, then increasing λ


classifier_rows = results_tables(dataset)[0].get("classifier", {}).get("rows", [])


def prior_fd(name: str) -> float:
    """The classifier Fréchet distance of G(z), z ~ N(0, I), from results/<dataset>-classifier.json (inf if absent)."""
    fds = [r["fd"] for r in classifier_rows if r.get("model") == name and r.get("protocol") == "sample"
           and r.get("variant") == "prior" and r.get("fd") is not None]
    return min(fds) if fds else float("inf")


# The default: the λ > 0 whose prior samples look most like data (lowest measured FD; ties and missing
# measurements go to the documented default lsr-gan). Never the λ = 0 control: it ignores the encoder, so
# its G(μ(x)) need not resemble x, and this page is about the imaginings of x.
measured = {n: prior_fd(n) for n in gans}
with_term = [n for n in gans if lam_of[n] > 0] or gans
default = min(with_term, key=lambda n: (measured[n], n != "lsr-gan"))
model_key = f"imagine_model_{dataset}"
state.restore_first(model_key, "models", allowed=gans)
name = st.radio("λ (weight of −log q(z|G(z)))", gans, format_func=lambda n: f"λ = {lam_of[n]:g} ({n})",
                index=None if model_key in st.session_state else gans.index(default), horizontal=True,
                key=model_key)
if name is None:
    name = default
if measured[default] < float("inf"):
    st.caption(f"Opened at λ = {lam_of[default]:g}, the λ > 0 whose G(z), z ~ N(0, I), scores the lowest "
               "classifier Fréchet distance here (" + ", ".join(f"λ = {lam_of[n]:g}: {measured[n]:.1f}" for n in gans
                                                               if measured[n] < float('inf')) + "). λ = 0 is the "
               "plain-GAN control: its G(μ(x)) need not resemble x.")
if measured[name] > 5 * measured[default]:  # e.g. a literal λ = 1 against the sharp AR-ELBO base (reading 8)
    st.caption(f"λ = {lam_of[name]:g} is the far end of the λ ablation, not a usable generator: its G(z) scores "
               f"{measured[name]:.0f} against {measured[default]:.0f}. Against this sharp base the latent term "
               "outweighs the adversarial one by orders of magnitude, the discriminator rejects every G(z), and G "
               "draws speckle (docs/readings.md, LSR-GAN readings 6-8).")
model = get_model(dataset, name)
if model is None:
    st.stop()
base_name = str(ok[name]["config"].get("base_path", "?")).rsplit("/", 1)[-1]
m = ok[name]["meta"].get("metrics", {})
if all(isinstance(m.get(k), (int, float)) for k in ("sharpness", "base_sharpness", "data_sharpness", "recon_mse",
                                                      "base_recon_mse", "latent_recovery")):
    st.caption(f"Base VAE: {state.escape_md(base_name)}. On 2,000 test images: sharpness G {m['sharpness']:.3f} vs VAE "
               f"{m['base_sharpness']:.3f} (data {m['data_sharpness']:.3f}); recon MSE G {m['recon_mse']:.2f} vs VAE "
               f"{m['base_recon_mse']:.2f}; latent recovery ‖μ(G(z)) − z‖² {m['latent_recovery']:.3f}.")

c1, c2, c3, c4 = st.columns([2, 3, 1, 1])
source = c1.radio("Input", ["test images", "upload"], horizontal=True, key="imagine_source")
n_draws = c3.slider("Imaginings per row", 2, 12, 6, key="imagine_draws")
temperature = c4.select_slider("Posterior width T", [1.0, 2.0, 5.0, 10.0, 20.0], value=1.0, key="imagine_temperature",
                               help="z = μ(x) + T·σ(x)·ε. At T = 1 the draws come from q(z|x) itself.")

inputs, labels = [], []
if source == "test images":
    data = safe_dataset_images(dataset)
    if data is None:
        st.stop()
    state.restore("imagine_indices", "images", state.csv_ints, allowed=range(len(data[0])),
                  describe=f"test image indices 0..{len(data[0]) - 1}")
    chosen = c2.multiselect("Test images (index of the first 2,000)", list(range(len(data[0]))), default=[0, 1, 2, 3],
                            key="imagine_indices")
    state.publish("imaginings", models=name, images=sorted(chosen))
    inputs = [torch.from_numpy(data[0][i]) for i in chosen]
    labels = [f"test image {i}" for i in chosen]
else:
    state.publish("imaginings", models=name)
    got = upload(dataset, key="imagine_upload", container=c2)
    if got is not None:
        inputs, labels = [got[0][0]], [got[1]]
    else:
        st.caption("Upload an image to see the VAE's code for it imagined by G.")


@st.cache_data(show_spinner="Imagining ...", max_entries=256)
def imagine_row_png(dataset: str, name: str, image: np.ndarray, n: int, seed: int, temperature: float,
                    _model) -> tuple[bytes, bytes, float]:
    """(input | D(μ(x)) | G(μ(x))) and the n imaginings G(z), z = μ + T σ ε, as two PNGs, with the
    image's mean posterior standard deviation per unit."""
    x = torch.from_numpy(image)[None]
    with torch.no_grad():
        mu, logvar = _model.posterior(x)
        head = torch.cat([x, _model.base.decode(mu), _model.decode(mu)])
        dreams = _model.imagine(x, n, generator=torch.Generator().manual_seed(seed), temperature=temperature)[0]
    return (to_png(to_grid(head, nrow=3, scale=3)), to_png(to_grid(dreams, nrow=n, scale=3)),
            float((0.5 * logvar).exp().mean()))


widths = []
for x, label in zip(inputs, labels):
    # in presentation mode the imaginings get the page's full width, under their input
    left, right = (st.container(), st.container()) if presenting() else st.columns([3, max(n_draws, 3)])
    head, dreams, width = imagine_row_png(dataset, name, x.numpy(), int(n_draws), 0, float(temperature), model)
    widths.append(width)
    picture(head, f"{label} · VAE D(μ(x)) · G(μ(x))", key=f"head_{label}", container=left,
            filename=f"{dataset}-{name}-{label}-recon")
    picture(dreams, f"G(z), z = μ(x) + {temperature:g}·σ(x)·ε: {int(n_draws)} imaginings", key=f"dreams_{label}",
            container=right, filename=f"{dataset}-{name}-{label}-imaginings")
if widths:
    st.caption(f"Why a row of imaginings can look identical: the base VAE's posterior is sharp, σ(x) = "
               f"{float(np.mean(widths)):.3f} per unit on average over these images, against the prior's 1, so draws "
               f"from q(z|x) (T = 1) are nearly the same code. Raise the posterior width T to see what G draws "
               f"around μ(x).")

st.divider()
st.subheader("Random codes z ~ p(z): LSR-GAN beside the VAE decoder")
s1, s2 = st.columns([1, 3])
seed = s1.number_input("Seed", 0, 10_000, 0, key="imagine_seed")
n_random = s2.select_slider("Codes", [8, 16, 24, 32], value=16, key="imagine_random_n")


@st.cache_data(show_spinner="Decoding ...", max_entries=256)
def random_pair_png(dataset: str, name: str, n: int, seed: int, _model) -> tuple[bytes, bytes]:
    """G(z) and the base VAE's D(z) for the same n prior codes, as two PNG grids."""
    z = _model.sample(n, "prior", generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return (to_png(to_grid(_model.decode(z), nrow=8, scale=2)),
                to_png(to_grid(_model.base.decode(z), nrow=8, scale=2)))


g_png, d_png = random_pair_png(dataset, name, int(n_random), int(seed), model)
r1, r2 = st.columns(2)
picture(g_png, f"LSR-GAN G(z) — {name}", key="random_g", container=r1, filename=f"{dataset}-{name}-G-prior")
picture(d_png, f"VAE decoder D(z) — {base_name}", key="random_d", container=r2, filename=f"{dataset}-{base_name}-D-prior")
