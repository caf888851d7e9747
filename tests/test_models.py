"""explorer.models: the registry, every family's public API, one training step each."""
from pathlib import Path

import copy
import pytest
import torch

from explorer.checkpoint import build_model
from explorer.models import MODELS, ZOO, model_class
from explorer.training import train_step


ROOT = Path(__file__).resolve().parent.parent


# Families built on another checkpoint get it here: LSR-GAN on the shipped mnist ar-elbo-iso-i.
OUTSIDE_PARTS = {"lsr-gan": {"base_path": str(ROOT / "checkpoints" / "mnist" / "ar-elbo-iso-i.safetensors")}}


# Overrides so that one step trains every network: LDC-VAE's sampler net otherwise waits for
# ``sampler_start`` steps (tests/test_ldc_vae.py checks that wait).
ONE_STEP = {"ldc-vae": {"sampler_start": 0}}


ELBO_TRAINED = sorted(n for n, (family, _) in ZOO.items() if MODELS[family].trainer == "elbo")


def test_registry_covers_every_shipped_name():
    expected = {"vae", "beta-vae", "ar-elbo-iso-i", "ar-elbo-iso-d", "ar-elbo-diag-i", "ar-elbo-diag-d",
                "consistency-vae", "vae-2d", "ldc-vae", "lsr-gan", "lsr-gan-lambda0", "lsr-gan-lambda0.002",
                "ae", "rae-l2", "rae-gp", "wae-mmd"}
    assert set(ZOO) == expected
    assert set(ZOO) - set(ELBO_TRAINED) == {"lsr-gan", "lsr-gan-lambda0", "lsr-gan-lambda0.002"}
    for name, (family, overrides) in ZOO.items():
        model = build_model(family, **OUTSIDE_PARTS.get(family, {}), **overrides)
        assert model.config.default_name() == name
        assert model.family == family and MODELS[family] is type(model)


def test_unknown_family_and_field_are_named():
    with pytest.raises(ValueError, match="'gan'.*ar-elbo"):
        model_class("gan")
    with pytest.raises(ValueError, match="variance"):
        build_model("vae", variance="iso-i")
    with pytest.raises(ValueError, match="iso-q"):
        build_model("ar-elbo", variance="iso-q")


@pytest.mark.parametrize("name", ELBO_TRAINED)  # lsr-gan*: tests/test_lsr_gan.py
def test_one_training_step_changes_every_trained_network(name, batch):
    torch.manual_seed(0)
    family, overrides = ZOO[name]
    model = build_model(family, **{**overrides, **ONE_STEP.get(name, {})})
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    terms = train_step(model, opt, batch)
    assert {"loss", "rec"} <= set(terms) and ("kl" in terms) == model.gaussian_encoder
    for part in ("encoder", "decoder") + (("sampler_net",) if hasattr(model, "sampler_net") else ()):
        changed = [k for k, v in model.state_dict().items() if k.startswith(part) and not torch.equal(v, before[k])]
        assert changed, f"{name}: no {part} weight changed"


def test_ar_elbo_exposes_sigma2_mle_after_a_step(batch):
    torch.manual_seed(0)
    model = build_model("ar-elbo", variance="iso-i")
    assert model.sigma2_estimate() == 1.0
    terms = train_step(model, torch.optim.SGD(model.parameters(), lr=0.0), batch)
    assert model.sigma2_estimate() == pytest.approx(terms["sigma2"], rel=1e-6)
    assert 0 < model.sigma2_estimate() < 1
    diag = build_model("ar-elbo", variance="diag-d")
    train_step(diag, torch.optim.SGD(diag.parameters(), lr=0.0), batch)
    assert diag.sigma2.shape == (1, 28, 28)


def test_ar_elbo_diag_d_reads_old_checkpoints_in_sample_and_trains_pooled(batch):
    """Diag-D reading 3: new models pool eq. 51's variance with Diag-I's; a config saved before
    reading 2 (no ``diag_d_variance``) loads as reading 1, one that names a reading keeps it, and
    the three readings give three different losses."""
    from explorer.models.ar_elbo import ARELBO

    assert build_model("ar-elbo", variance="diag-d").config.diag_d_variance == "pooled"
    cfg = build_model("ar-elbo", variance="diag-d", diag_d_variance="leave-one-out").config.to_dict()
    assert ARELBO.config_class.from_dict(ARELBO.upgrade_config(cfg)).diag_d_variance == "leave-one-out"
    legacy = {k: v for k, v in cfg.items() if k != "diag_d_variance"}
    assert ARELBO.config_class.from_dict(ARELBO.upgrade_config(legacy)).diag_d_variance == "in-sample"
    with pytest.raises(ValueError, match="'both'.*pooled.*leave-one-out.*in-sample"):
        build_model("ar-elbo", variance="diag-d", diag_d_variance="both")
    torch.manual_seed(0)
    models = {v: build_model("ar-elbo", variance="diag-d", diag_d_variance=v).eval()
              for v in ("pooled", "leave-one-out", "in-sample")}
    recs = []
    for m in models.values():
        m.load_state_dict(models["pooled"].state_dict())
        m.train()
        torch.manual_seed(1)
        recs.append(m.loss(batch)["rec"].item())
    assert len({round(r, 1) for r in recs}) == 3, recs


def test_consistency_loss_adds_alpha_weighted_drift(batch):
    torch.manual_seed(0)
    m0 = build_model("consistency-vae", alpha=0.0)
    m1 = build_model("consistency-vae", alpha=2.0)
    m1.load_state_dict(m0.state_dict())
    torch.manual_seed(1)
    t0 = m0.loss(batch)
    torch.manual_seed(1)
    t1 = m1.loss(batch)
    assert torch.allclose(t1["loss"] - t0["loss"], 2.0 * t1["drift_kl"], atol=1e-3)
    assert t1["drift_kl"] >= 0


def test_public_api_shapes_and_errors(batch):
    model = build_model("vae", latent_dim=5).eval()
    with torch.no_grad():
        mu, logvar = model.posterior(batch)
        assert mu.shape == logvar.shape == (8, 5)
        assert torch.equal(model.encode(batch), mu)
        x = model.decode(mu)
    assert x.shape == batch.shape and 0 <= x.min() and x.max() <= 1
    assert model.latent_dim == 5 and model.samplers == ["prior"]
    assert model.sample(7).shape == (7, 5)
    with pytest.raises(ValueError, match=r"\(B, 5\).*\(3, 4\)"):
        model.decode(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="1, 28, 28"):
        model.encode(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="gmm-10"):
        model.sample(3, "gmm-10")  # not fitted yet


def test_paper_profile_builds_app_j_shapes(batch):
    model = build_model("ar-elbo", profile="paper").eval()
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params > 10_000_000  # FC1024 layers of 002 App. J.1
    with torch.no_grad():
        assert model.decode(model.encode(batch)).shape == batch.shape


@pytest.mark.parametrize("name", ELBO_TRAINED)
def test_eval_terms_are_detached_and_change_nothing(name, batch):
    """The per-epoch monitor reads ``eval_terms``: detached scalars, weights untouched."""
    torch.manual_seed(0)
    family, overrides = ZOO[name]
    model = build_model(family, **overrides).eval()
    before = copy.deepcopy(model.state_dict())
    terms = model.eval_terms(batch)
    assert "mse" in terms and all(v.dim() == 0 and not v.requires_grad for v in terms.values()), terms
    for k, v in before.items():  # LDC-VAE's gibbs_sigma2 is NaN before training: equal_nan
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0, equal_nan=True, msg=k)


@pytest.mark.parametrize("side", [32, 64])
def test_paper_profile_for_colour_images_is_app_j2(side):
    """002 App. J.2 (CelebA): Conv128-256-512-1024 (5x5, stride 2), FC 2d; decoder from 1024 x (side/8)²
    through ConvT512-256-128 to ConvT3; d = 64 as App. J.2 trains CelebA."""
    from explorer.nets import build_nets
    enc, dec = build_nets("paper", (3, side, side), 128, 64)
    x = torch.rand(2, 3, side, side)
    assert enc.eval()(x).shape == (2, 128) and dec.eval()(torch.randn(2, 64)).shape == (2, 3, side, side)
    convs = [m.out_channels for m in enc if isinstance(m, torch.nn.Conv2d)]
    deconvs = [m.out_channels for m in dec if isinstance(m, torch.nn.ConvTranspose2d)]
    assert convs == [128, 256, 512, 1024] and deconvs == [512, 256, 128, 3]
    assert dec[0].out_features == 1024 * (side // 8) ** 2
    model = build_model("ar-elbo", profile="paper", image_shape=(3, side, side), latent_dim=64)
    assert model.decode(torch.randn(3, 64)).shape == (3, 3, side, side)


@pytest.mark.parametrize("side", [32, 64])
def test_rae_profile_for_colour_images_is_raes_celeba_network(side):
    """LDC-VAE's paper profile (000 §V.A: RAE's nets) on colour images: RAE's CelebA network, 5x5
    convs with batch norm on every hidden layer; the noise-input encoder wraps its first conv."""
    from explorer.nets import build_nets
    enc, dec = build_nets("rae", (3, side, side), 16, 16)
    assert [m.out_channels for m in enc if isinstance(m, torch.nn.Conv2d)] == [128, 256, 512, 1024]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in dec) == 3 and dec[0].out_features == 1024 * (side // 8) ** 2
    model = build_model("ldc-vae", profile="paper", image_shape=(3, side, side), latent_dim=16, particles=2).eval()
    x = torch.rand(2, 3, side, side)
    assert model.encode(x).shape == (2, 16) and model.decode(model.encode(x)).shape == (2, 3, side, side)


@pytest.mark.parametrize("side", [32, 64])
def test_resnet_profile_is_lsr_gans_app_d_network(side):
    """004 App. D Table 3: ResBlock down 64-128-32, FC 128; generator FC 32·(side/8)² (512 at 32 px),
    ResBlock up 128-64-32; every block changes the side by 2."""
    from explorer.nets import ResBlock, build_nets
    enc, dec = build_nets("resnet", (3, side, side), 32, 16)
    assert [(b.main[2].out_channels) for b in enc if isinstance(b, ResBlock)] == [64, 128, 32]
    assert [(b.main[3].out_channels) for b in dec if isinstance(b, ResBlock)] == [128, 64, 32]
    assert dec[0].out_features == 32 * (side // 8) ** 2 and (side != 32 or dec[0].out_features == 512)
    x = torch.rand(2, 3, side, side)
    assert enc.eval()(x).shape == (2, 32) and dec.eval()(torch.randn(2, 16)).shape == (2, 3, side, side)
    vae = build_model("ar-elbo", profile="resnet", image_shape=(3, side, side), latent_dim=16)
    assert vae.decode(torch.randn(2, 16)).shape == (2, 3, side, side)
