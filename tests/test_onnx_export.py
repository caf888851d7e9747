"""explorer.onnx_export: a decoder exported to ONNX decodes as the model does, is cached by the
checkpoint's SHA-256, and a stale, foreign or damaged export is refused and replaced."""
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import explorer
from explorer.io import file_sha256
from explorer.onnx_export import ExportError, check_export, decoder_export, export_record

ROOT = Path(__file__).resolve().parent.parent
CKPT = ROOT / "checkpoints" / "mnist" / "vae-2d.safetensors"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cache = tmp_path_factory.mktemp("onnx")
    return cache, decoder_export(CKPT, cache)


def test_the_export_decodes_as_the_model_does(exported):
    _, path = exported
    model = explorer.load(CKPT)
    z = torch.randn(7, model.latent_dim, generator=torch.Generator().manual_seed(0)) * 2
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (x,) = session.run(None, {"z": z.numpy()})
    with torch.no_grad():
        expected = model.decode(z).numpy()
    assert x.shape == (7, *model.image_shape)
    assert np.abs(x - expected).max() < 1e-5


def test_the_export_is_keyed_and_recorded_by_the_checkpoint_sha256_and_reused(exported):
    cache, path = exported
    digest = file_sha256(CKPT)
    assert path.name == f"{digest}.onnx"
    record = check_export(path, digest, latent_dim=2)
    assert record["family"] == "vae" and record["image_shape"] == "[1, 28, 28]"
    before = path.stat().st_mtime_ns
    assert decoder_export(CKPT, cache) == path and path.stat().st_mtime_ns == before  # from the cache
    assert sorted(p.name for p in cache.iterdir()) == [path.name]  # no temporary files left


def test_a_stale_foreign_or_damaged_export_is_refused_and_replaced(exported, tmp_path):
    _, path = exported
    digest = file_sha256(CKPT)
    with pytest.raises(ExportError, match="stale"):
        check_export(path, "0" * 64)
    with pytest.raises(ExportError, match="latent size"):
        check_export(path, digest, latent_dim=16)
    damaged = tmp_path / f"{digest}.onnx"
    damaged.write_bytes(b"\x08\x07not an onnx model")
    with pytest.raises(ExportError, match="not an ONNX model|not a decoder export"):
        check_export(damaged, digest)
    with pytest.raises(ExportError, match="no such export"):
        export_record(tmp_path / "missing.onnx")
    stale = path.read_bytes()  # another checkpoint's export under this checkpoint's name: refused, exported again
    other = tmp_path / "other"
    other.mkdir()
    (other / f"{digest}.onnx").write_bytes(stale.replace(digest.encode(), b"f" * 64))
    with pytest.raises(ExportError, match="stale"):
        check_export(other / f"{digest}.onnx", digest)
    fresh = decoder_export(CKPT, other)
    assert check_export(fresh, digest)["checkpoint_sha256"] == digest
    os.remove(fresh)
