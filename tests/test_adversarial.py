"""explorer.adversarial: LSR-GAN's tick-tock steps through the shared training loop."""
import pytest
import torch

from explorer.adversarial import discriminator_step, generator_step, make_optimizers, train_adversarial
from explorer.checkpoint import build_model
from explorer.data import load_dataset
from explorer.training import TrainConfig, TrainingDiverged


def snapshot(module):
    """The module's weights (parameters; batch-norm running statistics are not weights)."""
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before, module):
    return any(not torch.equal(before[k], v) for k, v in module.named_parameters())


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
