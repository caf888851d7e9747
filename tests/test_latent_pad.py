"""ui.latent_pad: the onnxruntime-web files the browser loads are the ones recorded (shipped, not
fetched), only they and the exports are served, and the map data places z as
explorer.projection.to_plane does."""
import base64
import hashlib

import numpy as np

import explorer
from explorer.projection import to_plane
from ui.catalog import model_version
from ui.latent_pad import ORT_DIR, ORT_FILES, STATIC, map_data

ROOT = STATIC.parent


def test_the_shipped_onnxruntime_web_files_are_the_recorded_ones():
    for name, digest in ORT_FILES.items():
        assert hashlib.sha256((ORT_DIR / name).read_bytes()).hexdigest() == digest, name
    readme = (ORT_DIR / "README.md").read_text()
    assert all(digest in readme for digest in ORT_FILES.values())


def test_only_the_runtime_and_the_exports_are_served():
    assert sorted(p.name for p in STATIC.iterdir() if p.name != "onnx") == ["ort"]
    assert "enableStaticServing = true" in (ROOT / ".streamlit" / "config.toml").read_text()
    assert "/static/onnx/" in (ROOT / ".gitignore").read_text().splitlines()  # made on first use, never committed


def test_the_map_data_places_z_as_to_plane_does():
    """The browser places z by (z − mean) · componentsᵀ (ui/latent_pad.js, ``project``)."""
    m = map_data("mnist", "vae", "pca", 100, ("0",) * 10, "t", model_version("mnist", "vae"))
    a = explorer.load(ROOT / "checkpoints" / "mnist" / "vae.safetensors").arrays
    xy = np.frombuffer(base64.b64decode(m["xy"]), dtype="<f4").reshape(-1, 2)
    np.testing.assert_allclose(xy, a["pca_test"].numpy()[:100], atol=1e-6)
    z = np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32)
    placed = (z - np.array(m["mean"])) @ np.array(m["components"]).T
    np.testing.assert_allclose(placed, to_plane(a, z, "pca"), atol=1e-5)
    assert not m["clickable"] and map_data("mnist", "vae-2d", "identity", 100, ("0",) * 10, "t",
                                           model_version("mnist", "vae-2d"))["clickable"]
