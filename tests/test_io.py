"""explorer.io: atomic writes, the one safetensors reader, versions."""
import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from explorer.io import (CheckpointError, atomic_write_bytes, file_sha256, json_field, read_safetensors, read_table,
                         versions)
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


SHIPPED_TABLE = Path(__file__).resolve().parent.parent / "results" / "mnist-classifier.json"


def small_table() -> dict:
    table = json.loads(SHIPPED_TABLE.read_text())
    return {**table, "rows": table["rows"][:3]}


def test_read_table_reads_the_shipped_tables_and_names_what_is_wrong_with_others(tmp_path):
    assert read_table(SHIPPED_TABLE)["dataset"] == "mnist"
    path = tmp_path / "mnist-classifier.json"
    table = small_table()
    cases = [
        (b"{\"rows\": [", r"mnist-classifier\.json: not JSON \(Expecting value at line 1, column 11\)"),
        (b"\xff\xfe", r"not UTF-8 text"),
        (b"[1, 2]", r"is not a results table: the table: \[1, 2\] is not of type 'object'"),
        (json.dumps({**table, "n": "10000"}).encode(), r"is not a results table: n: '10000' is not of type 'integer'"),
        (json.dumps({k: v for k, v in table.items() if k != "label"}).encode(), r"'label' is a required property"),
        (json.dumps({**table, "rows": [{**table["rows"][1], "fd": "1.5"}]}).encode(), r"rows\.0\.fd: '1\.5' is not of type"),
        (json.dumps({**table, "rows": table["rows"] + table["rows"][1:2]}).encode(),
         r"rows\.3: a second row for model '[^']+', rec/-"),
        (json.dumps({**table, "checkpoints": {"vae": "nope"}}).encode(), r"checkpoints\.vae: 'nope' does not match"),
        (("[" * 5000 + "]" * 5000).encode(), r"(nested|too deep)"),
    ]
    for data, message in cases:
        path.write_bytes(data)
        with pytest.raises(ValueError, match=message):
            read_table(path)
    with pytest.raises(FileNotFoundError):
        read_table(tmp_path / "missing.json")


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8) |
                    # no subnormals: a library loaded earlier in the worker may set flush-to-zero
                    st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=False),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=30),
       st.sampled_from(["rows", "n", "label", "checkpoints", "dataset", "prdc_k"]))
def test_any_json_in_a_table_field_gives_a_table_or_a_value_error_naming_the_file(tmp_path_factory, value, field):
    """Whatever JSON sits in a field the Leaderboard reads, read_table returns a table the page can
    show or one ValueError naming the file: never a KeyError or TypeError later, inside a page."""
    path = tmp_path_factory.mktemp("fuzz") / "mnist-classifier.json"
    path.write_text(json.dumps({**small_table(), field: value}))
    try:
        table = read_table(path)
    except ValueError as e:
        assert "mnist-classifier.json" in str(e)
        return
    assert isinstance(table["rows"], list) and isinstance(table["n"], int) and isinstance(table["label"], str)
    assert all(isinstance(r["model"], str) and isinstance(r["variant"], str) for r in table["rows"])
