"""train.py: the command line, the checkpoint it writes, and its refusals."""
import json

import explorer
import train as train_cli
from explorer.checkpoint import read_metadata
from explorer.io import file_sha256


def test_train_cli_records_the_base_and_default_lr(base_file, tmp_path, capsys):
    out = tmp_path / "ckpts"
    (out / "mnist").mkdir(parents=True)
    rc = train_cli.main(["--model", "lsr-gan", "--dataset", "mnist", "--vae", str(base_file), "--lambda", "0",
                         "--epochs", "1", "--limit", "128", "--no-umap", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    header = read_metadata(out / "mnist" / "lsr-gan-lambda0.safetensors")
    assert header["config"]["base_sha256"] == file_sha256(base_file)
    assert header["config"]["lam"] == 0.0
    assert header["meta"]["train"]["lr"] == 2e-4
    m = header["meta"]["metrics"]
    for key in ("sharpness", "base_sharpness", "latent_recovery", "recon_mse", "imagination_variance"):
        assert m[key] is not None and m[key] >= 0
    rc = train_cli.main(["--model", "lsr-gan", "--dataset", "mnist", "--vae", str(tmp_path / "nope.safetensors"),
                         "--out", str(out)])
    assert rc == 2 and "base VAE checkpoint not found" in capsys.readouterr().err


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
