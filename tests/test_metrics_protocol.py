"""explorer.metrics.protocol: the rec/sample/interp image-set table."""
import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hst

from explorer.data import load_dataset
from explorer.io import file_sha256
from explorer.layout import list_models
from explorer.metrics.protocol import evaluate_table, image_sets, merge_tables, remeasured, stale_models


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


def test_merge_tables_drops_the_rows_of_removed_checkpoints():
    old = {**_table(rows=[("test-data", 1.0), ("a", 2.0), ("gone", 5.0), ("b", 3.0)]),
           "checkpoints": {"a": "1", "gone": "2", "b": "3"}}
    new = {**_table(rows=[("test-data", 1.1), ("c", 4.0)]), "checkpoints": {"c": "4"}}
    merged = merge_tables(old, new, shipped=["a", "b", "c"])
    assert [(r["model"], r["fd"]) for r in merged["rows"]] == [("test-data", 1.1), ("a", 2.0), ("b", 3.0), ("c", 4.0)]
    assert merged["checkpoints"] == {"a": "1", "b": "3", "c": "4"}
    assert merged["updates"][-1]["dropped"] == ["gone"]
    assert "dropped" not in merge_tables(old, new)["updates"][-1]  # without the folder's names nothing goes


def test_stale_models_are_those_whose_file_changed():
    table = {"checkpoints": {"a": "1", "b": "2", "gone": "3"}}
    assert stale_models(table, {"a": "1", "b": "9", "new": "4"}) == ["b"]
    assert stale_models({}, {"a": "1"}) == []  # a table without the record judges nothing


def test_remeasured_lists_every_model_an_update_measured_and_the_last_date():
    old = _table(rows=[("test-data", 1.0), ("a", 2.0), ("b", 3.0)])
    merged = merge_tables(merge_tables(old, {**_table(rows=[("a", 9.0)]), "created": "2026-12-01T10:00"}),
                          {**_table(rows=[("c", 4.0)]), "created": "2026-12-02T09:00"})
    merged["updates"].insert(0, {"renamed": {"x": "y"}, "created": "2027-01-01"})  # a note, not a measurement
    assert remeasured(merged) == (["a", "c"], "2026-12-02T09:00")
    assert remeasured(old) == ([], "")


JSONISH = hst.recursive(hst.none() | hst.booleans() | hst.integers() | hst.floats(allow_subnormal=False) | hst.text(max_size=8),
                        lambda c: hst.lists(c, max_size=3) | hst.dictionaries(hst.sampled_from(["models", "created", "x"]), c, max_size=3),
                        max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(JSONISH)
def test_remeasured_never_raises_on_a_hand_edited_updates_list(updates):
    models, last = remeasured({"updates": updates})
    assert all(isinstance(m, str) for m in models) and isinstance(last, str)


@pytest.mark.parametrize("table_path", sorted((Path(__file__).resolve().parent.parent / "results").glob("*.json")),
                         ids=lambda p: p.name)
def test_shipped_tables_measured_the_shipped_checkpoints(table_path):
    """Every results table records the SHA-256 of each checkpoint its rows measured; a retrained
    checkpoint needs its rows recomputed (``explorer.evaluate ... --update --models NAME``)."""
    table = json.loads(table_path.read_text())
    shipped = list_models(table_path.parent.parent / "checkpoints", table["dataset"])
    assert set(table["checkpoints"]) == set(shipped), "the table covers exactly the shipped models"
    assert stale_models(table, {n: file_sha256(p) for n, p in shipped.items()}) == []
