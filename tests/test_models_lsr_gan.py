"""explorer.models.lsr_gan (seed 004): the model, its frozen base and eq. 3-4."""
import math
import shutil
from pathlib import Path

import pytest
import torch

import explorer
from explorer.checkpoint import CheckpointError, build_model, load_checkpoint, read_metadata, save
from explorer.io import file_sha256
from explorer.models.lsr_gan import BaseMismatch


def test_config_is_filled_from_the_base(gan, base_file):
    assert gan.config.latent_dim == 16
    assert gan.config.base_sha256 == file_sha256(base_file)
    assert not any(k.startswith("base") for k in gan.state_dict())
    assert all(not p.requires_grad for p in gan.base.parameters())
    assert {id(p) for p in gan.parameters()}.isdisjoint({id(p) for p in gan.base.parameters()})


def test_latent_term_of_the_generator_loss_matches_a_fixed_gaussian_encoder(gan, monkeypatch):
    mu, logvar = torch.full((3, 16), 0.5), torch.full((3, 16), math.log(0.25))  # q(z|x) = N(0.5, 0.25 I) for every x
    monkeypatch.setattr(gan.base, "posterior", lambda x: (mu, logvar))
    z = torch.zeros(3, 16)
    terms = gan.generator_loss(z, gan.decode(z))
    by_hand = 16 * 0.5 * (0.25 / 0.25 + math.log(0.25) + math.log(2 * math.pi))
    assert terms["latent_nll"].item() == pytest.approx(by_hand, rel=1e-6)
    lam = gan.config.lam  # the default λ = 5e-4 (reading 7)
    assert lam == 5e-4
    assert terms["g_loss"].item() == pytest.approx(terms["g_adv"].item() + lam * by_hand, rel=1e-6)


def test_save_load_round_trip_and_the_base_comes_from_its_file(gan, base_file, batch):
    gan.eval()
    out = base_file.parent / "lsr-gan.safetensors"
    save(gan, out)
    assert not any(k.startswith("model.base") for k in read_metadata(out)["keys"])
    loaded = load_checkpoint(out).model
    z = torch.randn(4, 16)
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), gan.decode(z))
        assert torch.equal(loaded.encode(batch), gan.encode(batch))
        assert torch.equal(loaded.discriminator(batch), gan.discriminator(batch))
    assert loaded.config == gan.config


def test_a_replaced_base_is_refused_with_a_clear_error(gan, base_file, tmp_path, save_model):
    out = tmp_path / "lsr-gan.safetensors"
    save(gan, out)
    save_model(base_file, seed=5, family="ar-elbo")  # retrained base under the same name
    with pytest.raises(CheckpointError, match=r"SHA-256 .* trained on .*retrain"):
        load_checkpoint(out)
    base_file.unlink()
    with pytest.raises(CheckpointError, match="base VAE checkpoint not found"):
        load_checkpoint(out)


def test_bases_that_cannot_work_are_refused(tmp_path, save_model):
    ldc = save_model(tmp_path / "ldc.safetensors", family="ldc-vae")
    with pytest.raises(BaseMismatch, match="implicit encoder"):
        build_model("lsr-gan", base_path=str(ldc))
    two = save_model(tmp_path / "vae-2d.safetensors", latent_dim=2)
    with pytest.raises(BaseMismatch, match="latent_dim 16 does not match the base VAE's 2"):
        build_model("lsr-gan", base_path=str(two), latent_dim=16)
    assert build_model("lsr-gan", base_path=str(two)).latent_dim == 2


def test_detached_variance_keeps_the_value_and_drops_the_reward_for_uncertainty(base_file, batch):
    """Reading 5: same -log q value; the gradient reaches the image only through μ."""
    literal = build_model("lsr-gan", base_path=str(base_file), latent_term="nll")
    default = build_model("lsr-gan", base_path=str(base_file))
    z = torch.randn(len(batch), 16)
    grads = {}
    for name, model in (("nll", literal), ("detached", default)):
        x = batch.clone().requires_grad_(True)
        value = model.latent_nll(z, x)
        grads[name] = torch.autograd.grad(value.sum(), x)[0]
        grads[name + "_value"] = value.detach()
    assert torch.allclose(grads["nll_value"], grads["detached_value"])
    x = batch.clone().requires_grad_(True)
    mu, logvar = default.base.posterior(x)
    through_mu = torch.autograd.grad((0.5 * (z - mu).pow(2) / logvar.detach().exp()).sum(), x)[0]
    assert torch.allclose(grads["detached"], through_mu, atol=1e-5)
    assert not torch.allclose(grads["nll"], grads["detached"], atol=1e-5)
    with pytest.raises(ValueError, match="unknown latent_term"):
        build_model("lsr-gan", base_path=str(base_file), latent_term="mse")


def test_imaginings_spread_with_the_posterior_temperature(gan, batch):
    """G(z) for z = μ + T σ ε: reproducible for a seed, the same at T → 0 for every draw, and more
    varied as T grows; T <= 0 is refused."""
    gan.eval()

    def spread(t):
        out = gan.imagine(batch[:2], 5, generator=torch.Generator().manual_seed(0), temperature=t)
        assert out.shape == (2, 5, *gan.image_shape) and out.min() >= 0 and out.max() <= 1
        return out.std(dim=1).mean().item()

    with torch.no_grad():
        a = gan.imagine(batch[:2], 3, generator=torch.Generator().manual_seed(1))
        assert torch.equal(a, gan.imagine(batch[:2], 3, generator=torch.Generator().manual_seed(1)))
        assert spread(1e-6) < 1e-4 < spread(1.0) < spread(10.0)
    with pytest.raises(ValueError, match="temperature"):
        gan.imagine(batch[:2], 3, temperature=0.0)


def test_a_saved_lsr_gan_never_reads_a_base_outside_its_checkpoint_root(tmp_path):
    """The shipped LSR-GAN records base_path checkpoints/mnist/ar-elbo-iso-i.safetensors. Copied alone into
    another folder, it must not load that file from the repository (outside its root): no base, no model."""
    root = Path(__file__).resolve().parent.parent
    (tmp_path / "mnist").mkdir()
    shutil.copy(root / "checkpoints" / "mnist" / "lsr-gan.safetensors", tmp_path / "mnist" / "lsr-gan.safetensors")
    with pytest.raises(CheckpointError, match="base VAE checkpoint not found"):
        explorer.load(tmp_path / "mnist" / "lsr-gan.safetensors")
    shutil.copy(root / "checkpoints" / "mnist" / "ar-elbo-iso-i.safetensors", tmp_path / "mnist")
    assert explorer.load(tmp_path / "mnist" / "lsr-gan.safetensors").base.latent_dim == 16  # beside it: found


def test_the_paper_generator_for_colour_images_is_004s_resnet(tmp_path, save_model):
    """004 App. D: on colour images the paper profile's G is the ResNet generator (ResBlock up 128-64-32)."""
    from explorer.nets import ResBlock
    base = save_model(tmp_path / "ar-elbo-iso-i.safetensors", family="ar-elbo", image_shape=(3, 32, 32))
    gan = build_model("lsr-gan", base_path=str(base), profile="paper", image_shape=(3, 32, 32)).eval()
    assert [b.main[3].out_channels for b in gan.decoder if isinstance(b, ResBlock)] == [128, 64, 32]
    assert gan.decode(torch.randn(2, gan.latent_dim)).shape == (2, 3, 32, 32)
    assert gan.discriminator(torch.rand(2, 3, 32, 32)).shape == (2,)
