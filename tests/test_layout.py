"""explorer.layout: where checkpoints, sidecars, resume files and classifiers live."""
import pytest

from explorer.layout import (classifier_path, is_sidecar, list_models, model_name, model_path, model_path_of,
                             resume_path, sidecar_path)


def test_paths_of_one_model(tmp_path):
    p = model_path(tmp_path, "mnist", "lsr-gan-lambda0.01")
    assert p == tmp_path / "mnist" / "lsr-gan-lambda0.01.safetensors" and model_name(p) == "lsr-gan-lambda0.01"
    assert sidecar_path(p).name == "lsr-gan-lambda0.01.expost.safetensors" and model_path_of(sidecar_path(p)) == p
    assert resume_path(p).name == "lsr-gan-lambda0.01.resume.pt" == p.with_suffix(".resume.pt").name
    assert is_sidecar(sidecar_path(p)) and not is_sidecar(p)
    assert classifier_path("mnist", tmp_path) == tmp_path / "mnist" / "backbones" / "classifier.safetensors"
    with pytest.raises(ValueError, match="not a model checkpoint path"):
        sidecar_path(sidecar_path(p))
    with pytest.raises(ValueError, match="not a model checkpoint path"):
        sidecar_path(tmp_path / "notes.txt")


def test_list_models_skips_sidecars_backbones_and_other_files(tmp_path):
    assert list_models(tmp_path, "mnist") == {}
    folder = tmp_path / "mnist"
    (folder / "backbones").mkdir(parents=True)
    for name in ("vae.safetensors", "vae.expost.safetensors", "b.safetensors", "b.resume.pt", "backbones/classifier.safetensors"):
        (folder / name).write_bytes(b"")
    assert list_models(tmp_path, "mnist") == {"b": folder / "b.safetensors", "vae": folder / "vae.safetensors"}
