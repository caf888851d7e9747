import json

import pytest
import torch
from safetensors.torch import save_file

import explorer
from explorer.checkpoint import CheckpointError, load_checkpoint, read_metadata, save
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


def test_atomic_write_leaves_no_temp_files(saved):
    _, path = saved
    assert [p.name for p in path.parent.iterdir()] == ["m.safetensors"]


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


def test_evaluate_cli_reproduces_the_stored_metrics(capsys):
    from pathlib import Path

    from explorer.evaluate import main
    path = Path(__file__).resolve().parent.parent / "checkpoints" / "mnist" / "vae.safetensors"  # retrained (issue 13)
    assert main([str(path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"name", "model", "dataset", "latent_dim", "test_mse", "kl", "drift_kl", "active_units", "sigma2",
            "coverage"} <= set(res)
    assert res["name"] == "vae" and res["latent_dim"] == 16 and res["sigma2"] is None
    stored = explorer.load(path).meta["metrics"]
    for key in ("test_mse", "kl", "drift_kl"):
        assert res[key] == pytest.approx(stored[key], rel=1e-4)
    assert res["coverage"] == pytest.approx(stored["coverage"], rel=1e-4)
    # the mode coverage and memorisation numbers stored at train time recompute (same seed, same classifier)
    assert set(res["sampler_modes"]) >= set(stored["sampler_modes"]) >= {"prior", "gmm-10"}
    for s, q in stored["sampler_modes"].items():
        assert res["sampler_modes"][s]["class_hist"] == pytest.approx(q["class_hist"], abs=1e-9)
        assert res["sampler_modes"][s]["nn_median"] == pytest.approx(q["nn_median"], rel=1e-4)


def test_evaluate_cli_reports_a_bad_file(tmp_path, capsys):
    from explorer.evaluate import main
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"123")
    assert main([str(bad)]) == 1
    assert "x.safetensors" in capsys.readouterr().err
