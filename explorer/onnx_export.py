"""Decoders as ONNX files, for decoding in the browser (onnxruntime-web) while a slider moves.

An export holds one model's :meth:`~explorer.models.base.LatentModel.decode`, x = sigmoid(decoder(z))
(an LSR-GAN's generator G(z)): input ``z`` float32 ``(B, d)``, output ``x`` float32 ``(B, C, H, W)``
in [0, 1], B dynamic. It is made by ``torch.onnx.export`` (the torch.export-based exporter, opset
18) from the model in eval mode, so batch norm uses its running statistics, as ``decode`` does.

Exports are a cache, keyed by the checkpoint's content: ``<cache>/<sha256 of the checkpoint>.onnx``
(:func:`decoder_export`). Each export records in its ONNX ``metadata_props`` the checkpoint's
SHA-256, the latent size, the image shape and the exporter's versions; :func:`check_export` refuses
a file whose record does not match the checkpoint (stale, foreign or damaged), and
:func:`decoder_export` then exports again. Writes are atomic (temporary file, then rename).
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import onnx
import torch

from .checkpoint import load
from .io import CheckpointError, atomic_write_bytes, file_sha256
from .models import LatentModel

FORMAT = "latent-explorer-decoder/1"
OPSET = 18
MAX_BATCH = 4096


class ExportError(CheckpointError):
    """An ONNX export that cannot be used for a checkpoint (stale, foreign or unreadable)."""


class _Decode(torch.nn.Module):
    """``decode(z)`` without the latent-size check (the exporter traces tensor code only)."""

    def __init__(self, model: LatentModel):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model.decoder(z))


def export_decoder(model: LatentModel, checkpoint_sha256: str) -> bytes:
    """The ONNX bytes of ``model.decode`` (see the module docstring), recording ``checkpoint_sha256``.

    Raises:
        ValueError: ``checkpoint_sha256`` is not 64 hex digits.
    """
    if len(checkpoint_sha256) != 64 or any(c not in "0123456789abcdef" for c in checkpoint_sha256):
        raise ValueError(f"checkpoint_sha256 must be 64 lowercase hex digits, got {checkpoint_sha256!r}")
    was_training = model.training
    module = _Decode(model).eval()
    z = torch.zeros(2, model.latent_dim)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (z,), input_names=["z"], output_names=["x"], opset_version=OPSET,
                                        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},),
                                        dynamo=True, external_data=False, verbose=False)
    finally:
        model.train(was_training)
    proto = program.model_proto
    record = {"format": FORMAT, "checkpoint_sha256": checkpoint_sha256, "family": model.family,
              "latent_dim": str(model.latent_dim), "image_shape": json.dumps(list(model.image_shape)),
              "torch": torch.__version__, "onnx": onnx.__version__, "opset": str(OPSET)}
    del proto.metadata_props[:]
    for key, value in record.items():
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def export_record(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an export as a dict.

    Raises:
        ExportError: the file is missing or not an ONNX model.
    """
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError as e:
        raise ExportError(f"{Path(path).name}: no such export") from e
    except Exception as e:  # noqa: BLE001 - any parse failure means "not an export of ours"
        raise ExportError(f"{Path(path).name}: not an ONNX model ({type(e).__name__})") from e
    return {p.key: p.value for p in proto.metadata_props}


def check_export(path: str | Path, checkpoint_sha256: str, latent_dim: int | None = None) -> dict[str, str]:
    """The record of an export made from the checkpoint with this SHA-256 (and latent size).

    Raises:
        ExportError: missing, unreadable, another format, or made from another checkpoint (stale).
    """
    record = export_record(path)
    name = Path(path).name
    if record.get("format") != FORMAT:
        raise ExportError(f"{name}: not a decoder export (format {record.get('format')!r}, expected {FORMAT!r})")
    if record.get("checkpoint_sha256") != checkpoint_sha256:
        raise ExportError(f"{name}: stale, made from checkpoint {str(record.get('checkpoint_sha256'))[:12]}..., "
                          f"not {checkpoint_sha256[:12]}...")
    if latent_dim is not None and record.get("latent_dim") != str(latent_dim):
        raise ExportError(f"{name}: latent size {record.get('latent_dim')}, the model's is {latent_dim}")
    return record


def decoder_export(checkpoint: str | Path, cache_dir: str | Path, model: LatentModel | None = None) -> Path:
    """Path of a valid export of ``checkpoint``'s decoder in ``cache_dir``
    (``<sha256>.onnx``): the cached file when :func:`check_export` accepts it, else a new export
    (about 3-5 s on 2 CPU cores), written atomically. ``model``: the loaded checkpoint, if at hand.

    Raises:
        CheckpointError: the checkpoint cannot be loaded.
        OSError: ``cache_dir`` cannot be written.
    """
    digest = file_sha256(checkpoint)
    path = Path(cache_dir) / f"{digest}.onnx"
    if path.is_file():
        try:
            check_export(path, digest)
            return path
        except ExportError:
            pass  # stale or damaged: export again over it
    model = load(checkpoint) if model is None else model
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, export_decoder(model, digest))
    return path
