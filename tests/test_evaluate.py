"""explorer.evaluate: the per-epoch monitor, and the mode-coverage check over the shipped checkpoints."""
from pathlib import Path

import pytest
import torch

import explorer
from explorer.data import load_dataset
from explorer.evaluate import epoch_monitor, sampler_modes
from explorer.expost import is_sidecar
from explorer.models import build_model

ROOT = Path(__file__).resolve().parent.parent
MIN_ENTROPY = 0.9  # issue 13: every gmm-10 and every sampler net, on 2,000 samples


def shipped(dataset: str) -> list[Path]:
    paths = [p for p in sorted((ROOT / "checkpoints" / dataset).glob("*.safetensors")) if not is_sidecar(p)]
    assert paths, f"no shipped checkpoints for {dataset}"  # never pass having checked nothing
    return paths


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_every_shipped_gmm10_and_sampler_net_draws_every_class(dataset):
    """Decoded samples of each model's ``gmm-10`` and of every ``sampler-net``, labelled by the
    dataset's shipped classifier: normalised class entropy >= 0.9 on 2,000 samples. A mode-collapsed
    sampler (only "1"s) or a collapsed model (one blurred image for every code) fails."""
    failures, checked = [], 0
    for path in shipped(dataset):
        model = explorer.load(path, expost=False)
        wanted = [s for s in ("gmm-10", "sampler-net") if s in model.samplers]
        for s, q in sampler_modes(model, dataset, n=2000, samplers=wanted, checkpoints=ROOT / "checkpoints").items():
            checked += 1
            if q["class_entropy"] < MIN_ENTROPY:
                failures.append(f"{path.stem}/{s}: class entropy {q['class_entropy']:.3f}, shares "
                                f"{[round(v, 2) for v in q['class_hist']]}")
    assert checked >= len(shipped(dataset)), "every shipped model offers gmm-10"
    assert not failures, "\n".join(failures)


def test_epoch_monitor_reports_test_terms_and_sampler_measures():
    torch.manual_seed(0)
    model = build_model("vae", latent_dim=4).eval()
    values = epoch_monitor("mnist", limit=300, n_samples=200, checkpoints=ROOT / "checkpoints")(model)
    assert {"test_loss", "test_rec", "test_kl", "test_mse"} <= set(values)
    x = load_dataset("mnist", "test", limit=300)[0]
    with torch.no_grad():
        mse = (x - model.decode(model.encode(x))).pow(2).flatten(1).sum(1).mean()
    assert values["test_mse"] == pytest.approx(float(mse), rel=1e-5)
    assert 0.0 <= values["class_entropy_prior"] <= 1.0 and values["fd_prior"] > 0
    assert model.training is False  # the monitor does not switch the model's mode for the caller
