"""LDC-VAE (seed 000): implicit encoder, Gibbs-posterior SVGD, sampler net."""
from pathlib import Path

import pytest
import torch

import explorer
from explorer.checkpoint import save
from explorer.evaluate import sampler_coverage
from explorer.models import build_model
from explorer.models.ldc_vae import KDE_SCALES, cv_bandwidth_scale, kde_score
from explorer.svgd import svgd_direction


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("ldc-vae", latent_dim=4, particles=3)


def test_encoder_is_implicit_and_its_mean_is_deterministic(model, batch):
    model.eval()
    with torch.no_grad():
        z1, z2 = model.encode(batch), model.encode(batch)
        assert z1.shape == (8, 4) and torch.equal(z1, z2)
        # batch-independent: the mean of one image does not depend on the others
        assert torch.allclose(model.encode(batch[:1]), z1[:1], atol=1e-5)
        draws = model.posterior_samples(batch, 5)
        assert draws.shape == (8, 5, 4) and draws.std(1).mean() > 0  # noise really enters
    with pytest.raises(NotImplementedError, match="implicit"):
        model.posterior(batch)
    assert not model.gaussian_encoder


def test_samplers_and_shapes(model):
    assert model.samplers == ["prior", "sampler-net"]
    model.gmm.fit(torch.randn(300, 4))
    assert model.samplers == ["prior", "gmm-10", "sampler-net"]
    model.eval()
    with torch.no_grad():
        for s in model.samplers:
            assert model.sample(6, s).shape == (6, 4)
    with pytest.raises(ValueError, match="'nope'"):
        model.sample(3, "nope")


def test_encoder_gradient_is_the_svgd_direction_through_z(model, batch):
    """Eq. 16: with phi held constant, d(surrogate)/dz = -phi / (B*M) for every particle."""
    torch.manual_seed(1)
    b, m, d = 8, model.config.particles, model.latent_dim
    xr = batch.repeat_interleave(m, 0)
    z = model.encoder(xr, torch.randn_like(xr)).detach().requires_grad_(True)
    x_hat = torch.sigmoid(model.decoder(z))
    sse = (xr - x_hat).pow(2).flatten(1).sum(1)
    sigma2 = (xr - x_hat).detach().var()
    score = torch.autograd.grad((-sse / sigma2).sum(), z)[0]
    phi = svgd_direction(z.detach().view(b, m, d), score.view(b, m, d)).reshape(-1, d)
    surrogate = -(phi * z).sum(1).mean()
    g = torch.autograd.grad(surrogate, z)[0]
    assert torch.allclose(g, -phi / (b * m), atol=1e-6)
    assert score.abs().sum() > 0


def test_gibbs_score_matches_finite_differences(model, batch):
    """∇_z log p(z|x) = -∇_z ||x - D(z)||² / σ² (eq. 13), checked numerically in float64."""
    model = model.double().eval()
    x = batch[:2].double()
    z = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    sigma2 = 0.05
    logp = model.gibbs_log_posterior(x, model.decode(z), sigma2)
    score = torch.autograd.grad(logp.sum(), z)[0]
    eps = 1e-6
    with torch.no_grad():
        for i in range(4):
            dz = torch.zeros_like(z)
            dz[:, i] = eps
            fd = (model.gibbs_log_posterior(x, model.decode(z + dz), sigma2)
                  - model.gibbs_log_posterior(x, model.decode(z - dz), sigma2)) / (2 * eps)
            assert torch.allclose(score[:, i], fd, rtol=1e-5, atol=1e-6)


def test_save_load_round_trip(model, batch, tmp_path):
    model.gmm.fit(torch.randn(300, 4))
    model.gibbs_sigma2.fill_(0.03)
    model.eval()
    path = save(model, tmp_path / "ldc.safetensors", meta={"name": "ldc"})
    loaded = explorer.load(path)
    with torch.no_grad():
        assert torch.equal(loaded.encode(batch), model.encode(batch))
        z = torch.randn(3, 4)
        assert torch.equal(loaded.decode(z), model.decode(z))
        g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        assert torch.equal(loaded.sample(7, "sampler-net", generator=g1), model.sample(7, "sampler-net", generator=g2))
    assert loaded.samplers == ["prior", "gmm-10", "sampler-net"]
    assert loaded.sigma2_estimate() == pytest.approx(0.03)
    assert loaded.config.particles == 3


def test_config_is_validated():
    with pytest.raises(ValueError, match="particles.*1"):
        build_model("ldc-vae", particles=1)
    with pytest.raises(ValueError, match="'huge'"):
        build_model("ldc-vae", profile="huge")
    with pytest.raises(ValueError, match="'prior'.*encoder-kde"):
        build_model("ldc-vae", sampler_target="prior")
    with pytest.raises(ValueError, match="sampler_kernel_scale.*0"):
        build_model("ldc-vae", sampler_kernel_scale=0.0)


def test_kde_score_closed_form():
    # All codes at c: q̂ = N(c, h² I), whose score is (c - z) / h².
    c = torch.tensor([[1.0, -2.0]]).repeat(5, 1)
    z = torch.tensor([[0.0, 0.0], [3.0, 1.0]])
    torch.testing.assert_close(kde_score(z, c, h=0.5), (c[:2] - z) / 0.25)
    # Two far-apart codes: a point near one of them follows that one only.
    two = torch.tensor([[0.0, 0.0], [100.0, 0.0]])
    torch.testing.assert_close(kde_score(torch.tensor([[1.0, 1.0]]), two, h=1.0), torch.tensor([[-1.0, -1.0]]))
    # Against autograd of the log-density with the default (Scott) width.
    codes = torch.randn(50, 3)
    zq = torch.randn(4, 3, requires_grad=True)
    h = codes.std(0).mean() * 50 ** (-1 / 7)
    logq = torch.logsumexp(-torch.cdist(zq, codes).pow(2) / (2 * h * h), 1).sum()
    torch.testing.assert_close(kde_score(zq.detach(), codes), torch.autograd.grad(logq, zq)[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(1, 3\)"):
        kde_score(zq.detach(), codes[:1])


@pytest.mark.parametrize("target", ["encoder-kde", "gibbs-mixture"])
def test_both_sampler_targets_give_a_direction_and_the_bank_is_first_in_first_out(target, batch):
    torch.manual_seed(0)
    # sampler_start=0: the sampler trains from the first step (the default waits 18,000 steps, reading 7)
    model = build_model("ldc-vae", latent_dim=4, particles=3, sampler_target=target, code_bank=30, sampler_start=0)
    terms = model.loss(batch[:6])
    assert torch.isfinite(terms["phi_sampler"]) and terms["phi_sampler"] > 0
    if target == "encoder-kde":
        assert model._codes.shape == (18, 4)  # B*M encoder particles banked
        first = model._codes.clone()
        model.loss(batch[:6])
        assert model._codes.shape == (30, 4)  # capped at code_bank, newest first
        torch.testing.assert_close(model._codes[18:], first[:12])


def test_paper_profile_is_the_rae_network_and_trains(batch):
    from explorer.training import train_step
    torch.manual_seed(0)
    model = build_model("ldc-vae", profile="paper", particles=2, sampler_start=0)
    convs = [m for m in model.encoder.rest if isinstance(m, torch.nn.Conv2d)]
    assert [model.encoder.first.out_channels] + [c.out_channels for c in convs] == [128, 256, 512, 1024]
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("sampler_net")}
    terms = train_step(model, torch.optim.Adam(model.parameters(), 1e-4), batch[:4])
    assert terms["rec"] > 0 and any(not torch.equal(v, model.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_shipped_sampler_net_covers_its_encoder_better_than_the_prior(dataset):
    """Reading 4's check (explorer.models.ldc_vae), recomputed on the shipped checkpoint: the
    sampler net's codes cover the encoder means of test images better than N(0, I) does."""
    model = explorer.load(Path(__file__).resolve().parent.parent / "checkpoints" / dataset / "ldc-vae.safetensors")
    cov = sampler_coverage(model, dataset, n=1000)
    assert cov["sampler-net"]["coverage"] > 2 * cov["prior"]["coverage"], cov
    assert cov["sampler-net"]["recall"] > cov["prior"]["recall"], cov


def test_sampler_waits_for_its_start_then_is_seeded_from_the_code_bank(batch):
    """Reading 6: no sampler update before ``sampler_start``; at it, the K offsets are K banked
    encoder particles; afterwards SVGD moves the sampler; samples are detached."""
    from explorer.training import train_step

    torch.manual_seed(0)
    m = build_model("ldc-vae", latent_dim=4, particles=3, sampler_components=8, sampler_sets=2,
                    sampler_particles=4, sampler_start=2, code_bank=64)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in m.sampler_net.state_dict().items()}
    train_step(m, opt, batch)  # step 1: before the start, the sampler net gets no gradient
    assert all(torch.equal(v, m.sampler_net.state_dict()[k]) for k, v in before.items() if "running" not in k)
    assert torch.count_nonzero(m.sampler_offsets) == 0
    train_step(m, opt, batch)  # step 2 = sampler_start: seeded from the bank
    bank = m._codes
    seeded = m.sampler_offsets.detach().clone()
    assert all((bank == row).all(1).any() for row in seeded)  # every offset is a banked particle
    assert min(abs(float(m.kde_scale) - s) for s in KDE_SCALES) < 1e-6  # reading 8: the KDE width, chosen at seeding
    terms = train_step(m, opt, batch)  # step 3: SVGD trains the sampler
    assert terms["phi_sampler"] > 0 and not torch.equal(seeded, m.sampler_offsets.detach())
    assert int(m.steps_done) == 3
    m.eval()
    z = m.sample(5, "sampler-net", generator=torch.Generator().manual_seed(0))
    assert z.shape == (5, 4) and not z.requires_grad
    z.numpy()  # a plain tensor (issue 13: it used to track gradients)


def test_config_saved_before_reading_6_loads_as_the_old_sampler(tmp_path):
    legacy = {"latent_dim": 4, "profile": "small", "image_shape": [1, 28, 28], "particles": 3, "sampler_particles": 0,
              "mean_draws": 16, "rec_to_encoder": True, "sampler_target": "encoder-kde", "sampler_kernel_scale": 4.0,
              "code_bank": 8192}
    cls = type(build_model("ldc-vae", latent_dim=4))
    cfg = cls.config_class.from_dict(cls.upgrade_config(legacy))
    assert cfg.sampler_components == 0 and cfg.sampler_start == 0 and cfg.sampler_kde_bandwidth == "scott"
    fresh = cls.config_class.from_dict({"latent_dim": 4})  # a new config: reading 6's sampler, Scott's width
    assert fresh.sampler_components == 256 and fresh.sampler_start == 18_000 and fresh.sampler_kde_bandwidth == "scott"
    state = {k: v for k, v in cls(fresh).state_dict().items() if k != "kde_scale"}  # written before reading 8
    old = cls(fresh)
    old.load_state_dict(state)
    assert float(old.kde_scale) == 1.0


def test_cv_bandwidth_is_scott_for_one_gaussian_and_narrower_for_clusters():
    """Reading 8: Scott's rule is right for one Gaussian; for well-separated clusters (as the codes of ten
    digit classes are) the held-out likelihood wants a narrower kernel."""
    g = torch.Generator().manual_seed(0)
    assert 0.9 <= cv_bandwidth_scale(torch.randn(4096, 16, generator=g)) <= 1.25
    centres = 10 * torch.randn(10, 16, generator=g)
    clusters = centres[torch.randint(10, (4096,), generator=g)] + torch.randn(4096, 16, generator=g)
    assert cv_bandwidth_scale(clusters) <= 0.5
    with pytest.raises(ValueError, match="K >= 4"):
        cv_bandwidth_scale(torch.randn(3, 16))
    with pytest.raises(ValueError, match="sampler_kde_bandwidth"):
        build_model("ldc-vae", sampler_kde_bandwidth="silverman")


def test_a_run_too_short_for_the_sampler_is_refused_before_training():
    """Reading 7: train.py asks check_schedule with the run's guaranteed steps before any work."""
    import train as train_cli

    model = build_model("ldc-vae", latent_dim=4)
    model.check_schedule(18_000 + 3000)  # 35 epochs of 60k at batch 100: fine
    with pytest.raises(ValueError, match="starts at step 18000.*3000 steps after it"):
        model.check_schedule(18_000)
    build_model("ldc-vae", latent_dim=4, sampler_start=0).check_schedule(3000)
    assert train_cli.main(["--model", "ldc-vae", "--dataset", "mnist", "--limit", "200", "--epochs", "1",
                           "--out", "/nonexistent-never-written"]) == 2
