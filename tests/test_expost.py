"""explorer.expost: fitting ex-post samplers on a checkpoint, measuring them, the CLI."""
import shutil

import pytest
import torch

import explorer
from explorer.checkpoint import save
from explorer.expost import main
from explorer.models import build_model


def test_every_sampler_draws_n_by_d_and_the_names_are_listed(with_sidecar, make_codes):
    _, path, _ = with_sidecar
    model = explorer.load(path)
    assert model.samplers == ["prior", "gmm-10", "gmm-100", "two-stage"]
    for s in model.samplers:
        z = model.sample(37, s, generator=torch.Generator().manual_seed(0))
        assert z.shape == (37, 4) and torch.isfinite(z).all(), s
    with pytest.raises(ValueError, match="not 'gmm'"):  # the old name is gone, not an alias
        model.sample(3, "gmm")
    ldc = build_model("ldc-vae", latent_dim=4)
    ldc.gmm.fit(make_codes())
    ldc.attach_expost(model.expost)
    assert ldc.samplers == ["prior", "gmm-10", "gmm-100", "two-stage", "sampler-net"]
    assert ldc.sample(5, "two-stage").shape == ldc.sample(5, "sampler-net").shape == (5, 4)
    assert "expost" not in str(list(model.state_dict())) and "two_stage" not in str(list(model.state_dict()))


def test_moving_the_model_moves_the_sidecar_samplers(with_sidecar):
    _, path, _ = with_sidecar
    model = explorer.load(path).double()
    assert model.expost.gmm100.means.dtype == model.expost.two_stage.shift.dtype == torch.float64
    assert model.sample(4, "two-stage").dtype == torch.float64


def test_cli_fits_a_checkpoint_and_skips_sidecars(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model("vae", latent_dim=3).eval()
    path = save(model, tmp_path / "tiny.safetensors", meta={"name": "tiny", "dataset": "mnist"})
    shutil.copy(path, tmp_path / "other.expost.safetensors")  # a glob would pass sidecars too
    rc = main([str(path), str(tmp_path / "other.expost.safetensors"), "--limit", "300", "--epochs", "2",
               "--device", "cpu", "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "skipping" in out and "other.expost.safetensors" in out and "wrote" in out
    loaded = explorer.load(path)
    assert loaded.samplers == ["prior", "gmm-100", "two-stage"]  # this checkpoint has no gmm-10
    meta = loaded.expost.meta
    assert meta["n_codes"] == 300 and meta["dataset"] == "mnist" and meta["split"] == "train"
    assert meta["command"].startswith("python -m explorer.expost") and meta["seed"] == 0
    assert set(meta["sampler_coverage"]) == {"gmm-100", "two-stage"}
    assert meta["wall_seconds"] > 0 and len(meta["two_stage"]["history"]) == 2
