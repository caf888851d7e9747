"""explorer.training: the one loop, resume, divergence, the convergence rule."""
import pytest
import torch

from explorer.data import load_dataset
from explorer.models import build_model
from explorer.training import TrainConfig, TrainingDiverged, train


@pytest.fixture(scope="module")
def images():
    return load_dataset("mnist", "train", limit=256)[0]


def test_resume_continues_where_the_run_stopped(images, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=64, seed=3)
    torch.manual_seed(0)
    full = build_model("ar-elbo", variance="iso-i", latent_dim=4)
    init = {k: v.clone() for k, v in full.state_dict().items()}
    train(full, images, cfg, progress=False, log=lambda s: None)

    part = build_model("ar-elbo", variance="iso-i", latent_dim=4)
    part.load_state_dict(init)
    resume = tmp_path / "m.resume.pt"
    train(part, images, TrainConfig(epochs=1, batch_size=64, seed=3), resume_path=resume, progress=False,
          log=lambda s: None)
    assert resume.is_file()
    again = build_model("ar-elbo", variance="iso-i", latent_dim=4)  # fresh process: weights come from the file
    logs = []
    hist = train(again, images, cfg, resume_path=resume, progress=False, log=logs.append)
    assert "resumed" in logs[0] and [h["epoch"] for h in hist] == [1, 2]
    for k, v in full.state_dict().items():
        assert torch.allclose(v, again.state_dict()[k], atol=1e-6), k


def test_nan_loss_stops_with_the_step_named_and_keeps_last_good_state(images, tmp_path):
    model = build_model("vae", latent_dim=4)
    resume = tmp_path / "m.resume.pt"
    train(model, images, TrainConfig(epochs=1, batch_size=64), resume_path=resume, progress=False, log=lambda s: None)
    good = resume.read_bytes()
    calls = {"n": 0}
    real_loss = model.loss

    def poisoned(x):
        calls["n"] += 1
        out = real_loss(x)
        if calls["n"] == 3:
            out["loss"] = out["loss"] * float("nan")
        return out

    model.loss = poisoned
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 3/4"):
        train(model, images, TrainConfig(epochs=2, batch_size=64), resume_path=resume, progress=False,
              log=lambda s: None)
    assert resume.read_bytes() == good


def test_convergence_rule_on_known_histories():
    from explorer.training import converged, improvement, stop_reason

    hist = [{"test_mse": v} for v in (10.0, 8.0, 7.0, 6.9, 6.85, 6.84)]
    assert improvement(hist[:3], "test_mse", 3) is None  # fewer than window + 1 values
    assert improvement(hist, "test_mse", 3) == pytest.approx((7.0 - 6.84) / 7.0)
    assert not converged(hist[:5], "test_mse", 0.01, 3)  # 8.0 -> 6.85: 14 % in 3 epochs
    assert converged(hist, "test_mse", 0.03, 3) and not converged(hist, "test_mse", 0.02, 3)
    cfg = TrainConfig(epochs=4, max_epochs=10, tol=0.03, window=3, monitor="test_mse")
    assert stop_reason(hist[:3], cfg) is None  # below the minimum
    assert stop_reason(hist[:5], cfg) is None  # minimum reached, still improving
    assert stop_reason(hist, cfg).startswith("converged")
    assert stop_reason(hist[:4], TrainConfig(epochs=4)) == "ran the 4 epochs asked for"
    worse = hist[:4] + [{"test_mse": 9.0}]  # worse than 3 epochs ago counts as converged (negative improvement)
    assert stop_reason(worse, cfg).startswith("converged")
    with pytest.raises(ValueError, match="max_epochs"):
        TrainConfig(epochs=5, max_epochs=3)


def test_fit_stops_when_the_monitor_converges_and_records_it(images):
    """A monitor that stops improving after epoch 3: training runs the minimum of 2 epochs, then goes
    on until the rule fires at epoch 5 (window 2), never reaching max_epochs; the monitor's values
    are in the history and the model is back in training mode for each epoch."""
    values = iter([5.0, 4.0, 3.0, 2.99, 2.985, 2.98, 2.975])
    seen = []

    def monitor(model):
        seen.append(model.training)
        return {"test_mse": next(values)}

    model = build_model("vae", latent_dim=4)
    cfg = TrainConfig(epochs=2, max_epochs=7, batch_size=128, window=2, tol=0.01, monitor="test_mse")
    hist = train(model, images, cfg, progress=False, log=lambda s: None, monitor=monitor)
    assert [h["test_mse"] for h in hist] == [5.0, 4.0, 3.0, 2.99, 2.985]
    assert model.stop_reason.startswith("converged") and "after 5 epochs" in model.stop_reason
    assert seen == [False] * 5  # the monitor sees the model in eval mode
