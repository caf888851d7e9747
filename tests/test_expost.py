"""Ex-post samplers gmm-10 / gmm-100 / two-stage and their sidecar file (explorer.expost)."""
import shutil
from pathlib import Path

import pytest
import torch

import explorer
from explorer.checkpoint import CheckpointError, save
from explorer.expost import (ExPostSamplers, SecondStageVAE, TwoStageConfig, fit_expost, is_sidecar, main,
                             model_path_of, read_sidecar_meta, refit_command, save_sidecar, sidecar_path)
from explorer.models import build_model
from explorer.models.lsr_gan import file_sha256
from explorer.samplers import GaussianMixtureSampler

ROOT = Path(__file__).resolve().parent.parent
FAST = TwoStageConfig(hidden=32, depth=1, epochs=2, batch_size=128)


def _codes(n=400, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * torch.tensor([2.0, 1.0, 0.5, 0.1][:d]) + 1.0


@pytest.fixture
def saved(tmp_path):
    """A d = 4 vae checkpoint with a fitted gmm-10, and a sidecar fitted on it (its "gmm-100"
    has 8 components here, to keep the test fast; the file records K)."""
    torch.manual_seed(0)
    model = build_model("vae", latent_dim=4).eval()
    model.gmm.fit(_codes())
    path = save(model, tmp_path / "m.safetensors", meta={"name": "m", "dataset": "mnist"})
    ex, info = fit_expost(_codes(seed=1), two_stage=FAST, n_components=8, progress=False)
    save_sidecar(ex, path, {"checkpoint_sha256": file_sha256(path), **info})
    return model, path, ex


def test_every_sampler_draws_n_by_d_and_the_names_are_listed(saved):
    _, path, _ = saved
    model = explorer.load(path)
    assert model.samplers == ["prior", "gmm-10", "gmm-100", "two-stage"]
    for s in model.samplers:
        z = model.sample(37, s, generator=torch.Generator().manual_seed(0))
        assert z.shape == (37, 4) and torch.isfinite(z).all(), s
    with pytest.raises(ValueError, match="not 'gmm'"):  # the old name is gone, not an alias
        model.sample(3, "gmm")
    ldc = build_model("ldc-vae", latent_dim=4)
    ldc.gmm.fit(_codes())
    ldc.attach_expost(model.expost)
    assert ldc.samplers == ["prior", "gmm-10", "gmm-100", "two-stage", "sampler-net"]
    assert ldc.sample(5, "two-stage").shape == ldc.sample(5, "sampler-net").shape == (5, 4)
    assert "expost" not in str(list(model.state_dict())) and "two_stage" not in str(list(model.state_dict()))


def test_moving_the_model_moves_the_sidecar_samplers(saved):
    _, path, _ = saved
    model = explorer.load(path).double()
    assert model.expost.gmm100.means.dtype == model.expost.two_stage.shift.dtype == torch.float64
    assert model.sample(4, "two-stage").dtype == torch.float64


def test_gmm_recovers_the_means_of_a_well_separated_2d_mixture():
    # Four components, std 0.3, 500 points each: the standard error of a fitted mean is about
    # 0.3 / sqrt(500) = 0.013, so 0.1 is ~7 standard errors; weights 0.25 within 0.03.
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-5.0, -5.0], [-5.0, 5.0], [5.0, -5.0], [5.0, 5.0]])
    codes = torch.cat([c + 0.3 * torch.randn(500, 2, generator=g) for c in centres])
    gmm = GaussianMixtureSampler(2, n_components=4).fit(codes, seed=0)
    order = torch.argsort(gmm.means[:, 0] * 10 + gmm.means[:, 1])
    assert torch.allclose(gmm.means[order], centres, atol=0.1)
    assert torch.allclose(gmm.weights, torch.full((4,), 0.25), atol=0.03)
    s = gmm.sample(4000, generator=g)
    assert s.shape == (4000, 2) and (s.abs() > 2.5).all()  # nothing between the clusters


def test_two_stage_vae_learns_a_known_gaussian():
    # Target N(m, S) in d = 4 with correlated, differently scaled axes; 4000 codes, 40 short epochs.
    # Tolerances: sample mean within 0.15 per coordinate (target std 0.47 ... 2); covariance
    # within 20 % in Frobenius norm (sampling error of 4000 draws alone ~ 3 %; this run: ~12 %)
    # for the two-stage sampler (draws from the fitted density); the decoder mean alone
    # (noise=False) lacks exactly the decoder noise (covariance_deficit): plus that, same 20 %.
    g = torch.Generator().manual_seed(0)
    m = torch.tensor([1.0, -2.0, 0.5, 3.0])
    a = torch.tensor([[2.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0], [0.3, 0.0, 0.2, 0.3]])
    cov = a @ a.T
    codes = m + torch.randn(4000, 4, generator=g) @ a.T
    vae = SecondStageVAE(4, hidden=64, depth=2)
    history = vae.fit(codes, TwoStageConfig(hidden=64, depth=2, epochs=40, batch_size=128, lr=2e-3), progress=False)
    assert len(history) == 40 and history[-1]["loss"] < history[0]["loss"]
    rel = lambda c: float(torch.linalg.norm(c - cov) / torch.linalg.norm(cov))  # noqa: E731
    z = vae.sample(4000, generator=torch.Generator().manual_seed(1))
    assert z.shape == (4000, 4)
    assert torch.allclose(z.mean(0), m, atol=0.15), (z.mean(0), m)
    assert rel(torch.cov(z.T)) < 0.2, (torch.cov(z.T), cov)
    z = vae.sample(4000, generator=torch.Generator().manual_seed(1), noise=False)
    assert torch.allclose(z.mean(0), m, atol=0.15), (z.mean(0), m)
    assert rel(torch.cov(z.T) + vae.covariance_deficit()) < 0.2, (torch.cov(z.T), cov, vae.gamma)
    assert rel(torch.cov(z.T)) > 0.05  # the deficit is real: the decoder mean alone is under-dispersed


def test_two_stage_fit_is_deterministic_and_leaves_the_global_rng_alone():
    codes = _codes()
    a, b = SecondStageVAE(4, 32, 1), SecondStageVAE(4, 32, 1)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    ha, hb = a.fit(codes, FAST, seed=5, progress=False), b.fit(codes, FAST, seed=5, progress=False)
    assert torch.rand(1) == before
    assert ha == hb and all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match=r"\(N >= 2, 4\)"):
        a.fit(torch.zeros(10, 3))


def test_sidecar_round_trip_gives_identical_samples(saved):
    _, path, ex = saved
    model = explorer.load(path)
    assert sidecar_path(path).name == "m.expost.safetensors" and is_sidecar(sidecar_path(path))
    for s in ("gmm-100", "two-stage"):
        want = ex.sample(50, s, generator=torch.Generator().manual_seed(7))
        got = model.sample(50, s, generator=torch.Generator().manual_seed(7))
        assert torch.equal(got, want), s
    assert model.expost.meta["checkpoint_sha256"] == file_sha256(path)
    assert len(model.expost.meta["two_stage"]["history"]) == FAST.epochs
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_stale_sidecar_warns_names_both_files_and_is_ignored(saved):
    model, path, _ = saved
    save(model, path, meta={"name": "m", "dataset": "mnist", "retrained": True})  # new bytes, new SHA-256
    with pytest.warns(UserWarning, match=r"m\.expost\.safetensors.*another version of .*m\.safetensors.*"
                                         r"python -m explorer\.expost"):
        loaded = explorer.load(path)
    assert loaded.samplers == ["prior", "gmm-10"]


def test_corrupt_sidecar_warns_and_the_model_still_loads(saved):
    _, path, _ = saved
    sidecar_path(path).write_bytes(b"\x00garbage" * 10)
    with pytest.warns(UserWarning, match=r"m\.expost\.safetensors: unusable .*python -m explorer\.expost"):
        loaded = explorer.load(path)
    assert loaded.samplers == ["prior", "gmm-10"]
    with pytest.warns(UserWarning):  # truncated
        sidecar_path(path).write_bytes(b"")
        explorer.load(path)


def test_loading_a_sidecar_as_a_model_is_a_clear_error(saved):
    _, path, _ = saved
    with pytest.raises(CheckpointError, match=r"m\.expost\.safetensors: an ex-post sampler sidecar.*load .*m\.safetensors"):
        explorer.load(sidecar_path(path))
    with pytest.raises(ValueError):
        sidecar_path(sidecar_path(path))


def test_legacy_gmm_arrays_and_metrics_are_read_as_gmm_10(tmp_path):
    model = build_model("vae", latent_dim=2)
    model.gmm.fit(_codes(d=2))
    cov = {"coverage": 0.5}
    path = save(model, tmp_path / "old.safetensors", meta={"metrics": {"sampler_coverage": {"prior": cov, "gmm": cov}}},
                arrays={"gmm": torch.zeros(3, 2), "pca_gmm": torch.zeros(3, 2), "prior": torch.ones(3, 2)})
    loaded = explorer.load(path)
    assert set(loaded.arrays) == {"gmm-10", "pca_gmm-10", "prior"}
    assert list(loaded.meta["metrics"]["sampler_coverage"]) == ["prior", "gmm-10"]
    assert list(explorer.read_metadata(path)["meta"]["metrics"]["sampler_coverage"]) == ["prior", "gmm-10"]


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


def test_shipped_sidecars_match_their_checkpoints():
    sidecars = sorted((ROOT / "checkpoints").glob("*/*.expost.safetensors"))
    if not sidecars:
        pytest.skip("no ex-post sidecars shipped")
    total = sum(p.stat().st_size for p in sidecars)
    assert total < 8.5e6, f"sidecars take {total / 1e6:.1f} MB"
    for p in sidecars:
        ckpt = model_path_of(p)
        assert ckpt.is_file(), f"{p} has no model checkpoint {ckpt.name}"
        assert read_sidecar_meta(p)["checkpoint_sha256"] == file_sha256(ckpt), f"{p} is stale: {refit_command(ckpt)}"
    vae = ROOT / "checkpoints" / "mnist" / "vae.safetensors"
    if sidecar_path(vae) in sidecars:
        model = explorer.load(vae)
        assert model.samplers == ["prior", "gmm-10", "gmm-100", "two-stage"]
        assert isinstance(model.expost, ExPostSamplers)
