"""explorer.checkpoint: save/load round trips, clear errors for bad files, legacy names."""
import json

import pytest
import torch
from safetensors.torch import save_file

import explorer
from explorer.checkpoint import CheckpointError, load_checkpoint, read_metadata, save
from explorer.layout import sidecar_path
from explorer.models import build_model


@pytest.fixture
def saved(tmp_path, batch):
    torch.manual_seed(0)
    model = build_model("ar-elbo", variance="diag-i", latent_dim=4).eval()
    model.gmm.fit(torch.randn(200, 4))
    model.sigma2.fill_(0.02)
    path = save(model, tmp_path / "m.safetensors", meta={"name": "m", "seed": 3},
                arrays={"test_mu": torch.randn(10, 4), "test_labels": torch.arange(10)})
    return model, path


def test_save_load_round_trip_gives_identical_outputs(saved, batch):
    model, path = saved
    loaded = explorer.load(path)
    assert not loaded.training and next(loaded.parameters()).device.type == "cpu"
    with torch.no_grad():
        assert torch.equal(loaded.encode(batch), model.encode(batch))
        z = torch.randn(5, 4)
        assert torch.equal(loaded.decode(z), model.decode(z))
    assert loaded.samplers == ["prior", "gmm-10"]
    assert torch.equal(loaded.gmm.means, model.gmm.means)
    assert loaded.sigma2_estimate() == pytest.approx(0.02)
    assert loaded.meta == {"name": "m", "seed": 3}
    assert loaded.arrays["test_labels"].dtype == torch.int64
    assert read_metadata(path)["config"]["variance"] == "diag-i"


def test_corrupt_file_raises_clear_error(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="m.safetensors.*corrupt or truncated"):
        explorer.load(path)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="m.safetensors"):
        explorer.load(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="nope.safetensors: no such checkpoint"):
        explorer.load(tmp_path / "nope.safetensors")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="foreign.safetensors: not a Latent Explorer checkpoint"):
        explorer.load(foreign)
    js = tmp_path / "cfg.safetensors"
    js.write_text(json.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="cfg.safetensors"):
        explorer.load(js)


def test_wrong_latent_size_in_config_is_refused(saved, tmp_path):
    model, path = saved
    from safetensors import safe_open
    from safetensors.torch import save_file as sf
    with safe_open(str(path), framework="pt") as f:
        md, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    cfg = json.loads(md["config"])
    cfg["latent_dim"] = 8
    md["config"] = json.dumps(cfg)
    bad = tmp_path / "bad.safetensors"
    sf(tensors, str(bad), metadata=md)
    with pytest.raises(CheckpointError, match="bad.safetensors: weights do not match"):
        load_checkpoint(bad)
    md["family"] = "no-such-model"
    sf(tensors, str(bad), metadata=md)
    with pytest.raises(CheckpointError, match="no-such-model"):
        load_checkpoint(bad)


def test_loading_a_sidecar_as_a_model_is_a_clear_error(with_sidecar):
    _, path, _ = with_sidecar
    with pytest.raises(CheckpointError, match=r"m\.expost\.safetensors: an ex-post sampler sidecar.*load .*m\.safetensors"):
        explorer.load(sidecar_path(path))
    with pytest.raises(ValueError):
        sidecar_path(sidecar_path(path))


def test_legacy_gmm_arrays_and_metrics_are_read_as_gmm_10(tmp_path, make_codes):
    model = build_model("vae", latent_dim=2)
    model.gmm.fit(make_codes(d=2))
    cov = {"coverage": 0.5}
    path = save(model, tmp_path / "old.safetensors", meta={"metrics": {"sampler_coverage": {"prior": cov, "gmm": cov}}},
                arrays={"gmm": torch.zeros(3, 2), "pca_gmm": torch.zeros(3, 2), "prior": torch.ones(3, 2)})
    loaded = explorer.load(path)
    assert set(loaded.arrays) == {"gmm-10", "pca_gmm-10", "prior"}
    assert list(loaded.meta["metrics"]["sampler_coverage"]) == ["prior", "gmm-10"]
    assert list(explorer.read_metadata(path)["meta"]["metrics"]["sampler_coverage"]) == ["prior", "gmm-10"]
