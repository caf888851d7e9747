import json

import pytest
import torch

import explorer
import train as train_cli
from explorer.data import load_dataset
from explorer.models import build_model
from explorer.training import TrainConfig, TrainingDiverged, train


@pytest.fixture(scope="module")
def images():
    return load_dataset("mnist", "train", limit=256)[0]


def test_resume_continues_where_the_run_stopped(images, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=64, seed=3)
    torch.manual_seed(0)
    full = build_model("ar-elbo", variance="iso-i", latent_dim=4)
    init = {k: v.clone() for k, v in full.state_dict().items()}
    train(full, images, cfg, progress=False, log=lambda s: None)

    part = build_model("ar-elbo", variance="iso-i", latent_dim=4)
    part.load_state_dict(init)
    resume = tmp_path / "m.resume.pt"
    train(part, images, TrainConfig(epochs=1, batch_size=64, seed=3), resume_path=resume, progress=False,
          log=lambda s: None)
    assert resume.is_file()
    again = build_model("ar-elbo", variance="iso-i", latent_dim=4)  # fresh process: weights come from the file
    logs = []
    hist = train(again, images, cfg, resume_path=resume, progress=False, log=logs.append)
    assert "resumed" in logs[0] and [h["epoch"] for h in hist] == [1, 2]
    for k, v in full.state_dict().items():
        assert torch.allclose(v, again.state_dict()[k], atol=1e-6), k


def test_nan_loss_stops_with_the_step_named_and_keeps_last_good_state(images, tmp_path):
    model = build_model("vae", latent_dim=4)
    resume = tmp_path / "m.resume.pt"
    train(model, images, TrainConfig(epochs=1, batch_size=64), resume_path=resume, progress=False, log=lambda s: None)
    good = resume.read_bytes()
    calls = {"n": 0}
    real_loss = model.loss

    def poisoned(x):
        calls["n"] += 1
        out = real_loss(x)
        if calls["n"] == 3:
            out["loss"] = out["loss"] * float("nan")
        return out

    model.loss = poisoned
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 3/4"):
        train(model, images, TrainConfig(epochs=2, batch_size=64), resume_path=resume, progress=False,
              log=lambda s: None)
    assert resume.read_bytes() == good


def test_train_cli_writes_a_self_describing_checkpoint(tmp_path, capsys):
    rc = train_cli.main(["--model", "consistency-vae", "--dataset", "mnist", "--epochs", "1", "--limit", "256",
                         "--latent-dim", "2", "--no-umap", "--device", "cpu", "--out", str(tmp_path)])
    assert rc == 0
    path = tmp_path / "mnist" / "consistency-vae-2d.safetensors"
    model = explorer.load(path)
    meta = model.meta
    assert meta["command"].startswith("python train.py --model consistency-vae")
    for key in ("seed", "device", "wall_seconds", "git_commit", "versions", "metrics", "history", "started_at"):
        assert key in meta
    assert meta["versions"]["torch"].startswith("2.14.1")
    m = meta["metrics"]
    assert {"test_mse", "kl", "drift_kl", "active_units", "sigma2", "coverage"} <= set(m)
    assert {"density", "coverage", "precision", "recall", "mmd"} <= set(m["coverage"])
    assert model.samplers == ["prior", "gmm-10"]  # no ex-post sidecar: train.py does not fit one
    assert model.arrays["test_mu"].shape == (2000, 2) and "identity_test" in model.arrays
    assert not list((tmp_path / "mnist").glob("*.resume.pt"))
    out = capsys.readouterr().out
    assert "rec" in out and "drift_kl" in out  # every loss term printed per epoch
    json.dumps(meta)


def test_train_cli_rejects_options_the_family_lacks(tmp_path, capsys):
    rc = train_cli.main(["--model", "vae", "--variance", "iso-i", "--dataset", "mnist", "--out", str(tmp_path)])
    assert rc == 2 and "variance" in capsys.readouterr().err
