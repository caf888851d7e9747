"""explorer.classifier: the dataset classifier behind the classifier FD and mode coverage."""
import pytest
import torch

from explorer.checkpoint import CheckpointError
from explorer.classifier import Classifier, ClassifierConfig, classifier_path, load_classifier, save_classifier
from explorer.data import load_dataset


# ---- the classifier backbone --------------------------------------------------------------------
def test_classifier_save_load_round_trip_and_foreign_file(tmp_path):
    model = Classifier(ClassifierConfig()).eval()
    x = torch.rand(3, 1, 28, 28)
    save_classifier(model, tmp_path / "c.safetensors", meta={"metrics": {"test_accuracy": 0.5}})
    back = load_classifier(tmp_path / "c.safetensors")
    torch.testing.assert_close(back.features(x), model.features(x))
    assert back.meta["metrics"]["test_accuracy"] == 0.5
    with pytest.raises(CheckpointError, match="not a classifier checkpoint"):
        load_classifier("checkpoints/mnist/vae.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_classifier(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="python train.py --model classifier"):
        load_classifier(tmp_path / "missing.safetensors")


def test_shipped_mnist_classifier_reaches_98_percent():
    model = load_classifier(classifier_path("mnist"))
    x, y = load_dataset("mnist", "test")
    assert model.accuracy(x, y) >= 0.98
    assert model.meta["metrics"]["test_accuracy"] >= 0.98 and "train.py --model classifier" in model.meta["command"]
