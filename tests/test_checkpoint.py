"""explorer.checkpoint: save/load round trips, clear errors for bad files, legacy names."""
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import explorer
import explorer.checkpoint as checkpoint_module
from explorer.checkpoint import CheckpointError, array_problems, load_checkpoint, read_metadata, save
from explorer.layout import sidecar_path
from explorer.models import MODELS, build_model


@pytest.fixture
def saved(tmp_path, batch):
    torch.manual_seed(0)
    model = build_model("ar-elbo", variance="diag-i", latent_dim=4).eval()
    model.gmm.fit(torch.randn(200, 4))
    model.sigma2.fill_(0.02)
    path = save(model, tmp_path / "m.safetensors", meta={"name": "m", "seed": 3},
                arrays={"test_mu": torch.randn(10, 4), "test_labels": torch.arange(10)})
    return model, path


def test_save_load_round_trip_gives_identical_outputs(saved, batch):
    model, path = saved
    loaded = explorer.load(path)
    assert not loaded.training and next(loaded.parameters()).device.type == "cpu"
    with torch.no_grad():
        assert torch.equal(loaded.encode(batch), model.encode(batch))
        z = torch.randn(5, 4)
        assert torch.equal(loaded.decode(z), model.decode(z))
    assert loaded.samplers == ["prior", "gmm-10"]
    assert torch.equal(loaded.gmm.means, model.gmm.means)
    assert loaded.sigma2_estimate() == pytest.approx(0.02)
    assert loaded.meta == {"name": "m", "seed": 3}
    assert loaded.arrays["test_labels"].dtype == torch.int64
    assert read_metadata(path)["config"]["variance"] == "diag-i"


def test_corrupt_file_raises_clear_error(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="m.safetensors.*corrupt or truncated"):
        explorer.load(path)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="m.safetensors"):
        explorer.load(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="nope.safetensors: no such checkpoint"):
        explorer.load(tmp_path / "nope.safetensors")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="foreign.safetensors: not a Latent Explorer checkpoint"):
        explorer.load(foreign)
    js = tmp_path / "cfg.safetensors"
    js.write_text(json.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match="cfg.safetensors"):
        explorer.load(js)


def test_wrong_latent_size_in_config_is_refused(saved, tmp_path):
    model, path = saved
    from safetensors import safe_open
    from safetensors.torch import save_file as sf
    with safe_open(str(path), framework="pt") as f:
        md, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    cfg = json.loads(md["config"])
    cfg["latent_dim"] = 8
    md["config"] = json.dumps(cfg)
    bad = tmp_path / "bad.safetensors"
    sf(tensors, str(bad), metadata=md)
    with pytest.raises(CheckpointError, match="bad.safetensors: weights do not match"):
        load_checkpoint(bad)
    md["family"] = "no-such-model"
    sf(tensors, str(bad), metadata=md)
    with pytest.raises(CheckpointError, match="no-such-model"):
        load_checkpoint(bad)


def test_loading_a_sidecar_as_a_model_is_a_clear_error(with_sidecar):
    _, path, _ = with_sidecar
    with pytest.raises(CheckpointError, match=r"m\.expost\.safetensors: an ex-post sampler sidecar.*load .*m\.safetensors"):
        explorer.load(sidecar_path(path))
    with pytest.raises(ValueError):
        sidecar_path(sidecar_path(path))


def test_legacy_gmm_arrays_and_metrics_are_read_as_gmm_10(tmp_path, make_codes):
    model = build_model("vae", latent_dim=2)
    model.gmm.fit(make_codes(d=2))
    cov = {"coverage": 0.5}
    path = save(model, tmp_path / "old.safetensors", meta={"metrics": {"sampler_coverage": {"prior": cov, "gmm": cov}}},
                arrays={"gmm": torch.zeros(3, 2), "pca_gmm": torch.zeros(3, 2), "prior": torch.ones(3, 2)})
    loaded = explorer.load(path)
    assert set(loaded.arrays) == {"gmm-10", "pca_gmm-10", "prior"}
    assert list(loaded.meta["metrics"]["sampler_coverage"]) == ["prior", "gmm-10"]
    assert list(explorer.read_metadata(path)["meta"]["metrics"]["sampler_coverage"]) == ["prior", "gmm-10"]


json_values = st.recursive(st.none() | st.booleans() | st.integers() |
                           st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(family=st.sampled_from(["vae", "ar-elbo", "lsr-gan", "teleporter", ""]),
       config=json_values | st.fixed_dictionaries({"latent_dim": json_values}, optional={"image_shape": json_values}),
       meta=json_values | st.fixed_dictionaries({}, optional={"metrics": json_values, "history": json_values,
                                                              "train": json_values, "stop_reason": json_values}))
def test_any_header_is_read_whole_or_refused_in_one_line(tmp_path_factory, family, config, meta):
    """Whatever JSON a checkpoint's header holds, read_metadata returns a header the app can use
    (family known, config and meta objects, the fields it reads typed) or raises CheckpointError;
    no other exception escapes."""
    path = tmp_path_factory.mktemp("h") / "m.safetensors"
    save_file({"model.w": torch.zeros(1)}, str(path), metadata={"format": "latent-explorer/1", "family": family,
                                                                 "config": json.dumps(config), "meta": json.dumps(meta)})
    try:
        header = read_metadata(path)
    except CheckpointError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
        return
    assert header["family"] in MODELS and isinstance(header["config"], dict) and isinstance(header["meta"], dict)
    assert isinstance(header["config"]["latent_dim"], int) and 1 <= header["config"]["latent_dim"] <= 1024
    assert isinstance(header["meta"].get("metrics", {}), dict) and isinstance(header["meta"].get("history", []), list)


@pytest.mark.parametrize("config, meta, match", [
    ("[]", "{}", "config: \\[\\] is not of type 'object'"),
    ("null", "{}", "config: None is not of type"),
    ('{"latent_dim": 4}', "[]", "meta: \\[\\] is not of type"),
    ('{"latent_dim": 4}', '{"metrics": "fast"}', "meta.metrics: 'fast'"),
    ('{"latent_dim": 4}', '{"metrics": {"coverage": "x"}}', "meta.metrics.coverage"),
    ('{"latent_dim": 50000}', "{}", "latent_dim: 50000 is greater than the maximum of 1024"),
    ('{"latent_dim": 4}', '{"a": ' + "[" * 100000 + "]" * 100000 + "}", "nested too deeply"),
    ('{"latent_dim": 4}', '{"a": ' + "[" * 20 + "]" * 20 + "}", "meta is nested 21 levels deep"),
])
def test_unusable_headers_are_named(tmp_path, config, meta, match):
    path = tmp_path / "m.safetensors"
    save_file({"model.w": torch.zeros(1)}, str(path),
              metadata={"format": "latent-explorer/1", "family": "vae", "config": config, "meta": meta})
    with pytest.raises(CheckpointError, match=match):
        read_metadata(path)


def test_an_unknown_family_is_refused_when_listed(saved, tmp_path):
    _, path = saved
    with safe_open(str(path), "pt") as f:
        md = dict(f.metadata())
    save_file(load_file(str(path)), str(tmp_path / "x.safetensors"), metadata={**md, "family": "teleporter"})
    with pytest.raises(CheckpointError, match="unknown model family 'teleporter'; allowed: ae, ar-elbo"):
        read_metadata(tmp_path / "x.safetensors")


@pytest.mark.parametrize("key, fill, match", [
    ("model.", float("nan"), "weights .* hold NaN or infinite values"),
    ("arrays.test_mu", float("inf"), "test_mu holds NaN or infinite values"),
])
def test_non_finite_weights_and_arrays_are_refused(saved, tmp_path, key, fill, match):
    _, path = saved
    with safe_open(str(path), "pt") as f:
        md = dict(f.metadata())
    tensors = load_file(str(path))
    tensors[next(k for k in tensors if k.startswith(key) and tensors[k].is_floating_point())].fill_(fill)
    save_file(tensors, str(tmp_path / "x.safetensors"), metadata=md)
    with pytest.raises(CheckpointError, match=match):
        explorer.load(tmp_path / "x.safetensors")


def test_app_arrays_of_the_wrong_shape_are_named():
    good = {"test_mu": torch.zeros(10, 4), "test_labels": torch.zeros(10, dtype=torch.long),
            "pca_test": torch.zeros(10, 2), "pca_components": torch.zeros(2, 4), "pca_mean": torch.zeros(4),
            "prior": torch.zeros(7, 4), "drift_kl": torch.zeros(10)}
    assert array_problems(good, 4) == []
    bad = {**good, "test_mu": torch.zeros(10), "pca_test": torch.zeros(10, 3), "test_labels": torch.zeros(10)}
    problems = array_problems(bad, 4)
    assert "test_mu has shape (10,), expected (N, 4)" in problems
    assert "pca_test has shape (10, 3), expected (N, 2)" in problems
    assert "test_labels are torch.float32, expected integers" in problems


def test_a_chain_of_base_models_that_loops_is_refused(saved):
    """A base chain is hash-pinned, so a loop needs an unpinned header (refused by the schema); the
    loader still refuses to load a file inside its own chain (defence in depth)."""
    _, path = saved
    token = checkpoint_module._LOADING.set((str(path.resolve()),))
    try:
        with pytest.raises(CheckpointError, match="loops back on itself"):
            load_checkpoint(path)
    finally:
        checkpoint_module._LOADING.reset(token)
