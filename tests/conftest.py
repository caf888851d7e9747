import os
import sys
from pathlib import Path

import pytest
import torch
from streamlit import config as st_config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from explorer.checkpoint import build_model, save  # noqa: E402
from explorer.io import file_sha256  # noqa: E402
from explorer.samplers.expost import fit_expost  # noqa: E402
from explorer.samplers.sidecar import save_sidecar  # noqa: E402
from explorer.samplers.two_stage import TwoStageConfig  # noqa: E402
os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
# The app shows only an error's type (.streamlit/config.toml); AppTest failures should say everything
st_config.get_option("client.showErrorDetails")  # parse the config files first, then override for the tests
st_config.set_option("client.showErrorDetails", "full")
# one torch thread per pytest-xdist worker (two workers share the 2 cores; 2 threads each collapse under load)
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))
FAST_TWO_STAGE = TwoStageConfig(hidden=32, depth=1, epochs=2, batch_size=128)


def _codes(n=400, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * torch.tensor([2.0, 1.0, 0.5, 0.1][:d]) + 1.0


@pytest.fixture
def batch():
    """A fixed batch of 8 MNIST-shaped images in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(8, 1, 28, 28, generator=g)


@pytest.fixture
def make_codes():
    """``make_codes(n=400, d=4, seed=0)``: codes ``(n, d)`` with per-unit scales 2, 1, 0.5, 0.1 and mean 1."""
    return _codes


@pytest.fixture
def fast_two_stage():
    """A two-stage VAE config small enough for tests (2 epochs of a 32-unit, 1-layer net)."""
    return FAST_TWO_STAGE


@pytest.fixture
def with_sidecar(tmp_path):
    """``(model, path, ex)``: a d = 4 vae checkpoint with a fitted gmm-10, and a sidecar fitted on
    it (its "gmm-100" has 8 components here, to keep the test fast; the file records K)."""
    torch.manual_seed(0)
    model = build_model("vae", latent_dim=4).eval()
    model.gmm.fit(_codes())
    path = save(model, tmp_path / "m.safetensors", meta={"name": "m", "dataset": "mnist"})
    ex, info = fit_expost(_codes(seed=1), two_stage=FAST_TWO_STAGE, n_components=8, progress=False)
    save_sidecar(ex, path, {"checkpoint_sha256": file_sha256(path), **info})
    return model, path, ex


def _save_model(path, seed=0, family="vae", **config):
    torch.manual_seed(seed)
    return save(build_model(family, **config), path)


@pytest.fixture
def save_model():
    """``save_model(path, seed=0, family="vae", **config)``: a fresh model saved as a checkpoint (its path)."""
    return _save_model


@pytest.fixture
def base_file(tmp_path):
    """An untrained ar-elbo (Iso-I) checkpoint named as LSR-GAN's default base."""
    return _save_model(tmp_path / "ar-elbo-iso-i.safetensors", family="ar-elbo")


@pytest.fixture
def gan(base_file):
    """An untrained LSR-GAN (the default λ) on :func:`base_file`."""
    torch.manual_seed(1)
    return build_model("lsr-gan", base_path=str(base_file))
