"""LSR-GAN: frozen base, eq. 3-4 steps, the latent term by hand, base provenance, round trip, metrics."""
import io
import math

import pytest
import torch
from PIL import Image

import train as train_cli
from explorer.adversarial import discriminator_step, generator_step, make_optimizers, train_adversarial
from explorer.checkpoint import CheckpointError, load_checkpoint, read_metadata, save
from explorer.data import load_dataset
from explorer.evaluate import lsr_gan_metrics
from explorer.image_metrics import sharpness
from explorer.losses import gaussian_nll
from explorer.models import build_model
from explorer.models.lsr_gan import BaseMismatch, file_sha256
from explorer.training import TrainConfig, TrainingDiverged
from explorer.uploads import UploadError, image_from_bytes


def _save_base(path, seed=0, family="vae", **config):
    torch.manual_seed(seed)
    return save(build_model(family, **config), path)


@pytest.fixture
def base_file(tmp_path):
    return _save_base(tmp_path / "ar-elbo-iso-i.safetensors", family="ar-elbo")


@pytest.fixture
def gan(base_file):
    torch.manual_seed(1)
    return build_model("lsr-gan", base_path=str(base_file))


def snapshot(module):
    """The module's weights (parameters; batch-norm running statistics are not weights)."""
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before, module):
    return any(not torch.equal(before[k], v) for k, v in module.named_parameters())


def test_config_is_filled_from_the_base(gan, base_file):
    assert gan.config.latent_dim == 16
    assert gan.config.base_sha256 == file_sha256(base_file)
    assert not any(k.startswith("base") for k in gan.state_dict())
    assert all(not p.requires_grad for p in gan.base.parameters())
    assert {id(p) for p in gan.parameters()}.isdisjoint({id(p) for p in gan.base.parameters()})


def test_each_step_changes_only_its_own_weights_and_the_base_stays_frozen(gan, batch):
    gan.train()
    opt_g, opt_d = make_optimizers(gan, 2e-4)
    g0, d0, b0 = snapshot(gan.decoder), snapshot(gan.discriminator), snapshot(gan.base)
    z = torch.randn(len(batch), gan.latent_dim)
    discriminator_step(gan, opt_d, batch, gan.decode(z))
    assert changed(d0, gan.discriminator)
    assert not changed(g0, gan.decoder) and not changed(b0, gan.base)
    d1 = snapshot(gan.discriminator)
    generator_step(gan, opt_g, z, gan.decode(z))
    assert changed(g0, gan.decoder)
    assert not changed(d1, gan.discriminator) and not changed(b0, gan.base)
    assert not gan.base.training


def test_gaussian_nll_by_hand():
    z, mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.0, 0.5]]), torch.tensor([[0.0, math.log(4.0)]])
    by_hand = 0.5 * (0.25 / 1 + 0 + math.log(2 * math.pi)) + 0.5 * (2.25 / 4 + math.log(4) + math.log(2 * math.pi))
    assert gaussian_nll(z, mu, logvar).item() == pytest.approx(by_hand, rel=1e-6)


def test_latent_term_of_the_generator_loss_matches_a_fixed_gaussian_encoder(gan, monkeypatch):
    mu, logvar = torch.full((3, 16), 0.5), torch.full((3, 16), math.log(0.25))  # q(z|x) = N(0.5, 0.25 I) for every x
    monkeypatch.setattr(gan.base, "posterior", lambda x: (mu, logvar))
    z = torch.zeros(3, 16)
    terms = gan.generator_loss(z, gan.decode(z))
    by_hand = 16 * 0.5 * (0.25 / 0.25 + math.log(0.25) + math.log(2 * math.pi))
    assert terms["latent_nll"].item() == pytest.approx(by_hand, rel=1e-6)
    lam = gan.config.lam  # the default λ = 0.01 (reading 6)
    assert lam == 0.01
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


def test_a_replaced_base_is_refused_with_a_clear_error(gan, base_file, tmp_path):
    out = tmp_path / "lsr-gan.safetensors"
    save(gan, out)
    _save_base(base_file, seed=5, family="ar-elbo")  # retrained base under the same name
    with pytest.raises(CheckpointError, match=r"SHA-256 .* trained on .*retrain"):
        load_checkpoint(out)
    base_file.unlink()
    with pytest.raises(CheckpointError, match="base VAE checkpoint not found"):
        load_checkpoint(out)


def test_bases_that_cannot_work_are_refused(tmp_path):
    ldc = _save_base(tmp_path / "ldc.safetensors", family="ldc-vae")
    with pytest.raises(BaseMismatch, match="implicit encoder"):
        build_model("lsr-gan", base_path=str(ldc))
    two = _save_base(tmp_path / "vae-2d.safetensors", latent_dim=2)
    with pytest.raises(BaseMismatch, match="latent_dim 16 does not match the base VAE's 2"):
        build_model("lsr-gan", base_path=str(two), latent_dim=16)
    assert build_model("lsr-gan", base_path=str(two)).latent_dim == 2


def test_adversarial_training_resumes_where_it_stopped(gan, base_file, tmp_path):
    x = load_dataset("mnist", "train", limit=128)[0]
    resume = tmp_path / "r.pt"
    cfg = TrainConfig(epochs=2, batch_size=64, lr=2e-4)
    full = train_adversarial(gan, x, cfg, resume_path=tmp_path / "full.pt", progress=False, log=lambda s: None)
    torch.manual_seed(1)
    other = build_model("lsr-gan", base_path=str(base_file))
    train_adversarial(other, x, TrainConfig(epochs=1, batch_size=64, lr=2e-4), resume_path=resume, progress=False,
                      log=lambda s: None)
    hist = train_adversarial(other, x, cfg, resume_path=resume, progress=False, log=lambda s: None)
    assert [h["epoch"] for h in hist] == [1, 2]
    assert hist[1]["g_loss"] == pytest.approx(full[1]["g_loss"], rel=1e-4)
    z = torch.randn(4, 16)
    with torch.no_grad():
        assert torch.allclose(other.decode(z), gan.decode(z), atol=1e-5)


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


def test_lsr_gan_metrics_see_a_perfect_generator(gan, monkeypatch):
    """With G := the base decoder, G and D measures coincide."""
    x = load_dataset("mnist", "test", limit=64)[0]
    monkeypatch.setattr(gan, "decode", gan.base.decode)
    m = lsr_gan_metrics(gan, x)
    assert m["sharpness"] == pytest.approx(m["base_sharpness"])
    assert m["recon_mse"] == pytest.approx(m["base_recon_mse"])
    assert m["imagination_variance"] == pytest.approx(m["base_imagination_variance"], rel=1e-5)


def test_sharpness_ranks_a_blurred_image_below_its_original():
    from torchvision.transforms.functional import gaussian_blur

    x = load_dataset("mnist", "test", limit=32)[0]
    sharp, blurred = sharpness(x), sharpness(gaussian_blur(x, 5, 1.0))
    assert (blurred < sharp).all()
    assert sharpness(torch.zeros(1, 1, 28, 28)).item() == 0.0
    rgb = x.repeat(1, 3, 1, 1)
    assert torch.allclose(sharpness(rgb), sharp, atol=1e-5)  # luminance of gray RGB is the gray level


def _png(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def test_upload_conversion_to_mnist_format():
    img = Image.new("RGB", (120, 80), "white")
    img.paste((0, 0, 0), (50, 10, 70, 70))  # a dark bar on white paper
    x, steps = image_from_bytes(_png(img), (1, 28, 28), content_size=20, dark_background=True)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    assert x[0, 0, 0, 0] == 0 and x.max() > 0.9  # inverted: light-on-dark
    assert any("inverted" in s for s in steps) and any("20 x 20" in s for s in steps)
    rows = (x[0, 0] > 0.5).any(1).nonzero()
    assert rows.max() - rows.min() + 1 == 20  # the long side fills MNIST's 20-pixel box


@pytest.mark.parametrize("data, match", [(b"", "empty"), (b"not an image", "not an image file"),
                                         (_png(Image.new("L", (5000, 2))), "limit is 4096 pixels"),
                                         (_png(Image.new("LAB", (8, 8)), "TIFF"), "mode 'LAB'")])
def test_bad_uploads_get_clear_errors(data, match):
    with pytest.raises(UploadError, match=match):
        image_from_bytes(data, (1, 28, 28))


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


def test_a_nan_generator_loss_stops_training_naming_epoch_and_step(gan, tmp_path, monkeypatch):
    x = load_dataset("mnist", "train", limit=128)[0]
    resume = tmp_path / "r.pt"
    train_adversarial(gan, x, TrainConfig(epochs=1, batch_size=64), resume_path=resume, progress=False, log=lambda s: None)
    good = {k: v.clone() for k, v in gan.decoder.state_dict().items()}
    monkeypatch.setattr(gan, "latent_nll", lambda z, images: torch.full((len(z),), float("nan")))
    with pytest.raises(TrainingDiverged, match=r"non-finite g_loss nan at epoch 2, step 1/2.*epoch 1"):
        train_adversarial(gan, x, TrainConfig(epochs=2, batch_size=64), resume_path=resume, progress=False,
                          log=lambda s: None)
    assert torch.load(resume, weights_only=True)["epoch"] == 1
    assert all(torch.equal(good[k], v) for k, v in gan.decoder.state_dict().items() if "running" not in k
               and "num_batches" not in k)
