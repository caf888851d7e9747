"""explorer.layout: where checkpoints, sidecars, resume files and classifiers live."""
import os
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from explorer.layout import (classifier_path, is_sidecar, list_models, model_name, model_path, model_path_of,
                             name_problem, resume_path, scan_models, sidecar_path)


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


def test_scan_models_names_every_unusable_entry(tmp_path):
    """Dangling links, link loops, links out of the root, folders and unsafe names are listed as
    unusable with the reason; good files (and links inside the root) are listed as models."""
    root = tmp_path / "ckpt"
    d = root / "mnist"
    d.mkdir(parents=True)
    (d / "good.safetensors").write_bytes(b"x")
    (d / "good.expost.safetensors").write_bytes(b"x")  # a sidecar: neither
    os.symlink(d / "good.safetensors", d / "alias.safetensors")  # inside the root: fine
    os.symlink(d / "gone.safetensors", d / "dangling.safetensors")
    os.symlink(d / "loop-b.safetensors", d / "loop.safetensors")
    os.symlink(d / "loop.safetensors", d / "loop-b.safetensors")
    (tmp_path / "elsewhere.safetensors").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere.safetensors", d / "outside.safetensors")
    (d / "folder.safetensors").mkdir()
    (d / "[x](http:evil).safetensors").write_bytes(b"x")
    ok, broken = scan_models(root, "mnist")
    assert sorted(ok) == ["alias", "good"]
    assert "broken link" in broken["dangling"] and "broken link" in broken["loop"]
    assert "outside the checkpoint folder" in broken["outside"]
    assert "not a regular file" in broken["folder"]
    assert "is not allowed" in broken["[x](http:evil)"]
    assert scan_models(root, "no-such-dataset") == ({}, {})


@given(st.text(max_size=80))
def test_a_model_name_is_a_safe_slug_or_refused(name):
    problem = name_problem(name)
    if problem is None:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) and len(name) <= 64
        assert not name.endswith(".expost")
    else:
        assert "not allowed" in problem
