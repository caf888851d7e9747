"""explorer.io: atomic writes, the one safetensors reader, versions."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from explorer.io import CheckpointError, atomic_write_bytes, file_sha256, json_field, read_safetensors, versions
from explorer.samplers.sidecar import SidecarError


def test_atomic_write_leaves_no_temp_files_and_replaces_the_old_bytes(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new bytes")
    assert path.read_bytes() == b"new bytes"
    assert [p.name for p in path.parent.iterdir()] == ["f.bin"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # fails inside the write
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_file_sha256_of_known_bytes(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")
    assert file_sha256(tmp_path / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_reader_checks_the_format_and_names_the_file(tmp_path):
    path = tmp_path / "t.safetensors"
    save_file({"a": torch.arange(3.0)}, str(path), metadata={"format": "x/1", "meta": '{"k": 1}'})
    md, tensors = read_safetensors(path, "x/1")
    assert md["format"] == "x/1" and torch.equal(tensors["a"], torch.arange(3.0))
    assert read_safetensors(path, None, tensors=False)[1] == ["a"]
    assert json_field(md, "meta", path) == {"k": 1} and json_field(md, "nope", path, default="{}") == {}
    with pytest.raises(CheckpointError, match=r"t\.safetensors: not an ex-post sidecar \(format 'x/1', expected 'y/1'\)"):
        read_safetensors(path, "y/1", what="an ex-post sidecar")
    with pytest.raises(SidecarError, match=r"nope\.safetensors: no such file \(expected a file\); hint"):
        read_safetensors(tmp_path / "nope.safetensors", "x/1", error=SidecarError, hint="hint")
    with pytest.raises(CheckpointError, match=r"t\.safetensors: damaged metadata"):
        json_field({"meta": "{not json"}, "meta", path)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_give_a_checkpoint_error_naming_the_file_never_another_exception(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "f.safetensors"
    path.write_bytes(data)
    try:
        read_safetensors(path, "x/1")
    except CheckpointError as e:
        assert str(path) in str(e)


def test_versions_name_python_and_the_packages():
    v = versions(("torch", "no-such-package-xyz"))
    assert v["torch"] == torch.__version__.split("+")[0] and v["no-such-package-xyz"] is None and v["python"]
