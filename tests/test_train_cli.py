"""train.py: the command line, the checkpoint it writes, and its refusals."""
import io
import json
import re
import shutil

import pytest
import torch

import explorer
import train as train_cli
from explorer.checkpoint import read_metadata
from explorer.io import file_sha256
from explorer.models import build_model


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


@pytest.mark.parametrize("argv, match", [
    (["--name", "../escape"], "--name: model name '../escape' is not allowed"),
    (["--name", "a/b"], "--name: model name 'a/b' is not allowed"),
    (["--name", "x.expost"], "names ending in .expost are ex-post sidecars"),
    (["--seed", "-1"], r"seed must be in \[0, 2\*\*32\), got -1"),
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--latent-dim", "50000"], "latent_dim must be in 1..1024"),
    (["--out", "/proc/no-such-folder"], "cannot write there"),
])
def test_bad_arguments_fail_before_any_work(tmp_path, capsys, argv, match, monkeypatch):
    """Each is refused in one line before the dataset is read (load_dataset would fail the test)."""
    monkeypatch.setattr(train_cli, "load_dataset", lambda *a, **k: pytest.fail("work started"))
    args = ["--model", "vae", "--dataset", "mnist", "--epochs", "1", "--out", str(tmp_path)]
    rc = train_cli.main(args + argv)
    err = capsys.readouterr().err
    assert rc == 2 and re.search(match, err) and err.count("\n") == 1, err


def test_an_out_that_is_a_file_or_full_is_refused_up_front(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train_cli, "load_dataset", lambda *a, **k: pytest.fail("work started"))
    (tmp_path / "file").write_text("x")
    assert train_cli.main(["--model", "vae", "--dataset", "mnist", "--out", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20))
    assert train_cli.main(["--model", "vae", "--dataset", "mnist", "--out", str(tmp_path)]) == 2
    assert "1 MB free; this run needs about 64 MB" in capsys.readouterr().err


def _tiny_run(tmp_path, *extra):
    return train_cli.main(["--model", "vae", "--dataset", "mnist", "--epochs", "1", "--limit", "128", "--no-umap",
                           "--latent-dim", "2", "--device", "cpu", "--out", str(tmp_path), "--resume", *extra])


@pytest.mark.parametrize("content, match", [
    (b"", "unreadable resume file"),
    (None, "unreadable resume file"),  # truncated: the first half of a real one
    ("latent", "saved by a run with another config"),
    ("epoch", "past this run's limit of 1 epochs"),
])
def test_bad_resume_files_are_named_in_one_line(tmp_path, capsys, content, match):
    folder = tmp_path / "mnist"
    folder.mkdir()
    resume = folder / "vae-2d.resume.pt"
    if isinstance(content, bytes):
        resume.write_bytes(content)
    else:
        model = build_model("vae", latent_dim=4 if content == "latent" else 2)
        opt = torch.optim.Adam(model.parameters())
        buf = io.BytesIO()
        torch.save({"model": model.state_dict(), "optimizers": [opt.state_dict()],
                    "epoch": 5 if content == "epoch" else 0,
                    "history": [{"epoch": i + 1} for i in range(5 if content == "epoch" else 0)]}, buf)
        data = buf.getvalue()
        resume.write_bytes(data[: len(data) // 2] if content is None else data)
    (folder / ".vae-2d.safetensors.abc123.tmp").write_bytes(b"left by a killed write")
    rc = _tiny_run(tmp_path, "--name", "vae-2d")
    err = capsys.readouterr()
    assert rc == 2 and match in err.err and err.err.count("\n") == 1, err.err
    assert str(resume) in err.err and "delete" in err.err
    assert not list(folder.glob(".*.tmp"))  # our own stale temp file is cleaned up on the next run
    assert "left by an interrupted write" in err.out


@pytest.mark.parametrize("argv, match", [
    (["--model", "vae", "--from", "x.safetensors"], "--from, --steps and --gmm-components are only for --model ldc-sampler"),
    (["--model", "ldc-sampler", "--from", "x.safetensors", "--gmm-components", "0"], "components must be >= 1, got 0"),
    (["--model", "ldc-sampler"], "--model ldc-sampler needs --from CHECKPOINT"),
    (["--model", "ldc-sampler", "--from", "x.safetensors", "--steps", "0"], "sampler refit: steps must be >= 1, got 0"),
])
def test_ldc_sampler_refit_arguments_are_refused_in_one_line(tmp_path, capsys, argv, match, monkeypatch):
    monkeypatch.setattr(train_cli, "load_dataset", lambda *a, **k: pytest.fail("work started"))
    rc = train_cli.main(argv + ["--dataset", "mnist", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and match in err and err.count("\n") == 1, err


def test_ldc_sampler_refit_writes_a_new_checkpoint_and_keeps_its_source(tmp_path, capsys, monkeypatch):
    """The wiring of reading 9 (the refit itself is tested in test_models_ldc_refit.py): the source
    stays byte for byte, the output keeps the source's history and records the refit, and a source of
    another family or dataset, or an output onto the source, is refused."""
    torch.manual_seed(0)
    src = tmp_path / "src" / "mnist" / "ldc-vae.safetensors"
    src.parent.mkdir(parents=True)
    explorer.save(build_model("ldc-vae", latent_dim=2, particles=2, sampler_components=4), src,
                  meta={"name": "ldc-vae", "dataset": "mnist", "history": [{"epoch": 1, "train_rec": 1.0}]})
    sha = file_sha256(src)
    monkeypatch.setattr(train_cli, "evaluate", lambda *a, **k: {"test_mse": 1.0})  # the full test split is slow
    monkeypatch.setattr(train_cli, "app_arrays", lambda *a, **k: {})
    base = ["--model", "ldc-sampler", "--dataset", "mnist", "--steps", "3", "--limit", "64", "--device", "cpu"]
    assert train_cli.main(base + ["--from", str(src), "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    meta = read_metadata(tmp_path / "out" / "mnist" / "ldc-vae.safetensors")["meta"]
    assert file_sha256(src) == sha
    assert meta["history"] == [{"epoch": 1, "train_rec": 1.0}] and meta["metrics"] == {"test_mse": 1.0}
    refit = meta["sampler_refit"]
    assert refit["steps"] == 3 and refit["source"] == str(src) and refit["seeded"] and refit["n_codes"] == 64
    assert refit["source_sha256"] == sha
    assert refit["command"].startswith("python train.py --model ldc-sampler")
    for argv, match in [(["--from", str(src), "--out", str(tmp_path / "src")], "--out would overwrite --from"),
                        (["--from", str(src), "--dataset", "fashion-mnist"], "was trained on 'mnist', not --dataset"),
                        (["--from", str(tmp_path / "nope.safetensors")], "nope.safetensors")]:
        assert train_cli.main(base + ["--out", str(tmp_path / "x")] + argv) == 2
        assert match in capsys.readouterr().err
    vae = tmp_path / "vae.safetensors"
    explorer.save(build_model("vae", latent_dim=2), vae, meta={"dataset": "mnist"})
    assert train_cli.main(base + ["--from", str(vae), "--out", str(tmp_path / "x")]) == 2
    assert "needs an ldc-vae checkpoint" in capsys.readouterr().err
