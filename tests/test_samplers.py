"""explorer.samplers: GMM, the two-stage VAE, the pair a sidecar holds, and the sidecar file."""
from pathlib import Path

import pytest
import torch

import explorer
from explorer.checkpoint import save
from explorer.io import file_sha256
from explorer.layout import is_sidecar, list_models, model_path_of, sidecar_path
from explorer.models import build_model
from explorer.samplers import GaussianMixtureSampler
from explorer.samplers.expost import ExPostSamplers
from explorer.samplers.sidecar import read_sidecar_meta, refit_command
from explorer.samplers.two_stage import SecondStageVAE, TwoStageConfig


ROOT = Path(__file__).resolve().parent.parent


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


def test_two_stage_fit_is_deterministic_and_leaves_the_global_rng_alone(make_codes, fast_two_stage):
    codes = make_codes()
    a, b = SecondStageVAE(4, 32, 1), SecondStageVAE(4, 32, 1)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    ha, hb = a.fit(codes, fast_two_stage, seed=5, progress=False), b.fit(codes, fast_two_stage, seed=5, progress=False)
    assert torch.rand(1) == before
    assert ha == hb and all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match=r"\(N >= 2, 4\)"):
        a.fit(torch.zeros(10, 3))


def test_sidecar_round_trip_gives_identical_samples(with_sidecar, fast_two_stage):
    _, path, ex = with_sidecar
    model = explorer.load(path)
    assert sidecar_path(path).name == "m.expost.safetensors" and is_sidecar(sidecar_path(path))
    for s in ("gmm-100", "two-stage"):
        want = ex.sample(50, s, generator=torch.Generator().manual_seed(7))
        got = model.sample(50, s, generator=torch.Generator().manual_seed(7))
        assert torch.equal(got, want), s
    assert model.expost.meta["checkpoint_sha256"] == file_sha256(path)
    assert len(model.expost.meta["two_stage"]["history"]) == fast_two_stage.epochs
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_stale_sidecar_warns_names_both_files_and_is_ignored(with_sidecar):
    model, path, _ = with_sidecar
    save(model, path, meta={"name": "m", "dataset": "mnist", "retrained": True})  # new bytes, new SHA-256
    with pytest.warns(UserWarning, match=r"m\.expost\.safetensors.*another version of .*m\.safetensors.*"
                                         r"python -m explorer\.expost"):
        loaded = explorer.load(path)
    assert loaded.samplers == ["prior", "gmm-10"]


def test_corrupt_sidecar_warns_and_the_model_still_loads(with_sidecar):
    _, path, _ = with_sidecar
    sidecar_path(path).write_bytes(b"\x00garbage" * 10)
    with pytest.warns(UserWarning, match=r"m\.expost\.safetensors: unusable .*python -m explorer\.expost"):
        loaded = explorer.load(path)
    assert loaded.samplers == ["prior", "gmm-10"]
    with pytest.warns(UserWarning):  # truncated
        sidecar_path(path).write_bytes(b"")
        explorer.load(path)


def test_shipped_sidecars_match_their_checkpoints():
    """Every shipped model has a sidecar fitted on its very file (the app shows gmm-100 and two-stage for all)."""
    models = [p for ds in ("mnist", "fashion-mnist") for p in list_models(ROOT / "checkpoints", ds).values()]
    sidecars = sorted((ROOT / "checkpoints").glob("*/*.expost.safetensors"))
    assert len(models) >= 30, f"only {len(models)} shipped model checkpoints"
    assert sorted(sidecar_path(p) for p in models) == sidecars, "every model, and only models, have a sidecar"
    total = sum(p.stat().st_size for p in sidecars)
    assert total < 8.5e6, f"sidecars take {total / 1e6:.1f} MB"
    for p in sidecars:
        ckpt = model_path_of(p)
        assert read_sidecar_meta(p)["checkpoint_sha256"] == file_sha256(ckpt), f"{p} is stale: {refit_command(ckpt)}"
    model = explorer.load(ROOT / "checkpoints" / "mnist" / "vae.safetensors")
    assert model.samplers == ["prior", "gmm-10", "gmm-100", "two-stage"]
    assert isinstance(model.expost, ExPostSamplers)


def test_gmm_sampler_recovers_known_mixture_means():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-6.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    codes = torch.cat([c + 0.3 * torch.randn(400, 2, generator=g) for c in centres])
    model = build_model("vae", latent_dim=2)
    model.gmm = type(model.gmm)(2, n_components=3).fit(codes)
    assert model.samplers == ["prior", "gmm-10"]
    found = model.gmm.means[torch.argsort(model.gmm.means[:, 0] + 0.1 * model.gmm.means[:, 1])]
    assert torch.allclose(found, centres[torch.argsort(centres[:, 0] + 0.1 * centres[:, 1])], atol=0.1)
    s = model.sample(3000, "gmm-10", generator=g)
    assert s.shape == (3000, 2)
    assert torch.allclose(s.mean(0), codes.mean(0), atol=0.3)
