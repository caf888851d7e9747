"""Safe, self-describing checkpoints: one safetensors file per model.

Layout of ``<name>.safetensors``:

- tensors ``model.<key>``: the model's state dict (weights and buffers, including the GMM);
- tensors ``arrays.<key>``: arrays the app needs, precomputed at train time (encoder means of
  test images, prior samples, their projections, ...);
- string metadata ``format`` (``latent-explorer/1``), ``family``, ``config`` (JSON, a plain
  dict) and ``meta`` (JSON: command, seed, device, wall time, git commit, library
  versions, metrics, history).

Nothing is pickled, so loading a file from elsewhere cannot run code. Writes are atomic:
a temporary file in the same folder, fsync, then ``os.replace``.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from .models import LatentModel, model_class

FORMAT = "latent-explorer/1"
EXT = ".safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, truncated, foreign or inconsistent; the message names the file."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode, CPU), its metadata and precomputed arrays."""

    model: LatentModel
    meta: dict = field(default_factory=dict)
    arrays: dict[str, torch.Tensor] = field(default_factory=dict)
    path: Path | None = None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(model: LatentModel, path: str | Path, meta: dict | None = None,
         arrays: dict[str, torch.Tensor] | None = None) -> Path:
    """Save ``model`` (+ JSON-able ``meta`` and tensor ``arrays``) to ``path`` atomically.

    Raises:
        TypeError: ``meta`` is not JSON-serialisable.
    """
    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    for k, v in (arrays or {}).items():
        tensors[f"arrays.{k}"] = torch.as_tensor(v).detach().cpu().contiguous().clone()
    metadata = {"format": FORMAT, "family": model.family, "config": json.dumps(model.config.to_dict()),
                "meta": json.dumps(meta or {})}
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))
    return Path(path)


def read_metadata(path: str | Path) -> dict:
    """Read only the header: ``{"family", "config", "meta"}`` as plain dicts. Cheap (no weights).

    Raises:
        CheckpointError: missing, unreadable or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
            keys = list(f.keys())
    except Exception as e:  # safetensors raises SafetensorError / OSError variants
        raise CheckpointError(f"{path}: not a readable safetensors file (corrupt or truncated?): {e}") from e
    if md.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a Latent Explorer checkpoint (format {md.get('format')!r}, "
                              f"expected {FORMAT!r})")
    try:
        return {"family": md["family"], "config": json.loads(md["config"]), "meta": json.loads(md.get("meta", "{}")),
                "keys": keys}
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: damaged metadata ({e})") from e


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load a checkpoint into a :class:`Checkpoint` (model in eval mode on CPU).

    Raises:
        CheckpointError: missing, corrupt, truncated or foreign file; unknown family; a config
            or state dict that does not match the family (e.g. a wrong latent size).
    """
    path = Path(path)
    header = read_metadata(path)
    try:
        cls = model_class(header["family"])
        model = cls.from_config(cls.config_class.from_dict(header["config"]), path)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: cannot rebuild the model: {e}") from e
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"{path}: tensor data is corrupt or truncated: {e}") from e
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    arrays = {k[len("arrays."):]: v for k, v in tensors.items() if k.startswith("arrays.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the {header['family']} config "
                              f"{header['config']}: {str(e).splitlines()[0]} ...") from e
    model.eval()
    return Checkpoint(model=model, meta=header["meta"], arrays=arrays, path=path)


def load(path: str | Path) -> LatentModel:
    """Load a model for use: an ``nn.Module`` in eval mode on CPU.

    The metadata and precomputed arrays are attached as ``model.meta`` and ``model.arrays``.

    Raises:
        CheckpointError: see :func:`load_checkpoint`.
    """
    ckpt = load_checkpoint(path)
    ckpt.model.meta = ckpt.meta
    ckpt.model.arrays = ckpt.arrays
    return ckpt.model
