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

Ex-post samplers fitted after training (``gmm-100``, ``two-stage``) live in a sidecar
``<name>.expost.safetensors`` next to the checkpoint (:mod:`explorer.samplers.sidecar`);
:func:`load_checkpoint` attaches it when present and fitted on this very file (SHA-256), and
warns and leaves it out otherwise. A sidecar path given as a checkpoint raises
:class:`CheckpointError` naming the model file to load instead.

Checkpoints written before the GMM-10 sampler was renamed from ``gmm`` to ``gmm-10`` store its
codes as ``arrays.gmm`` / ``arrays.<projection>_gmm`` and its coverage under ``metrics.
sampler_coverage.gmm``; they are read under the new name (:func:`_upgrade_names`), so the
shipped files need not be rewritten.
"""
from __future__ import annotations

import contextvars
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save as st_save

from .io import CheckpointError, atomic_write_bytes, json_field, nonfinite, read_safetensors
from .layout import EXT, is_sidecar, list_models, model_path, model_path_of
from .models import MODELS, LatentModel, model_class
from .models import build_model as _build_model
from .projection import METHODS as PROJECTIONS
from .samplers.sidecar import FORMAT as SIDECAR_FORMAT, attach_sidecar
from .schema import header_problem

FORMAT = "latent-explorer/1"
MAX_BASE_CHAIN = 4  # a model built on another checkpoint (LSR-GAN on its VAE): at most this many files deep
_LOADING: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("_LOADING", default=())

__all__ = ["FORMAT", "EXT", "Checkpoint", "CheckpointError", "build_model", "list_models", "load", "load_checkpoint",
           "model_path", "read_metadata", "save"]


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode, CPU), its metadata and precomputed arrays."""

    model: LatentModel
    meta: dict = field(default_factory=dict)
    arrays: dict[str, torch.Tensor] = field(default_factory=dict)
    path: Path | None = None


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


LEGACY_SAMPLER_NAMES = {"gmm": "gmm-10"}  # sampler names used by older checkpoints -> current names


def _upgrade_names(meta: dict, arrays: dict | None = None) -> None:
    """Rename, in place, legacy sampler keys (``gmm``) of ``meta["metrics"]["sampler_coverage"]``
    and of ``arrays`` (``gmm``, ``pca_gmm``, ``umap_gmm``, ``identity_gmm``) to the current names."""
    def renamed(key: str) -> str:
        head, _, tail = key.rpartition("_")
        if tail in LEGACY_SAMPLER_NAMES and head in ("", "pca", "umap", "identity"):
            return (f"{head}_" if head else "") + LEGACY_SAMPLER_NAMES[tail]
        return key

    def upgrade(d: dict) -> None:  # in place, keeping the order; a key already under its new name wins
        new = {}
        for k, v in d.items():
            new.setdefault(renamed(k) if renamed(k) not in d else k, v)
        d.clear()
        d.update(new)

    per = (meta.get("metrics") or {}).get("sampler_coverage")
    if isinstance(per, dict):
        upgrade(per)
    if arrays is not None:
        upgrade(arrays)


def read_metadata(path: str | Path) -> dict:
    """Read only the header: ``{"family", "config", "meta", "keys"}`` as plain dicts. Cheap (no weights).

    Raises:
        CheckpointError: missing, unreadable or foreign file; an ex-post sidecar
            (``*.expost.safetensors``) rather than a model checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    md, keys = read_safetensors(path, None, tensors=False, what="a checkpoint")
    if md.get("format") == SIDECAR_FORMAT or (is_sidecar(path) and md.get("format") != FORMAT):
        raise CheckpointError(f"{path}: an ex-post sampler sidecar, not a model checkpoint; load "
                              f"{model_path_of(path) if is_sidecar(path) else 'its model file'} instead "
                              f"(the sidecar is attached to it automatically)")
    if md.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a Latent Explorer checkpoint (format {md.get('format')!r}, "
                              f"expected {FORMAT!r})")
    header = {"family": md.get("family"), "config": json_field(md, "config", path),
              "meta": json_field(md, "meta", path, default="{}"), "keys": keys}
    if not isinstance(header["family"], str):
        raise CheckpointError(f"{path}: damaged metadata (no model family)")
    if problem := header_problem(header, tuple(MODELS)):
        raise CheckpointError(f"{path}: unusable header: {problem}")
    _upgrade_names(header["meta"])
    return header


def array_problems(arrays: dict[str, torch.Tensor], latent_dim: int) -> list[str]:
    """What is wrong with a checkpoint's app arrays (``arrays.<key>``), one phrase each, or ``[]``.

    Expected: codes ``(N, d)`` (``test_mu``, ``drift_mu``, one per sampler); projections
    ``<method>_<what>`` ``(N, 2)``, except ``pca_components (2, d)`` and ``pca_mean (d,)``;
    ``test_labels`` ``(N,)`` integers as long as ``test_mu``; per-image numbers ``(N,)``; every
    floating-point array finite.
    """
    out = [f"{k} holds NaN or infinite values" for k in nonfinite(arrays)]
    for k, t in arrays.items():
        head = k.split("_", 1)[0]
        if k == "pca_components":
            want = (2, latent_dim)
        elif k == "pca_mean":
            want = (latent_dim,)
        elif head in PROJECTIONS:
            want = (None, 2)
        elif k in ("test_labels", "drift_kl", "drift_sq") or k.endswith("_nn"):
            want = (None,)
        else:
            want = (None, latent_dim)
        if len(t.shape) != len(want) or any(w is not None and w != n for w, n in zip(want, t.shape)):
            shown = ", ".join("N" if w is None else str(w) for w in want) + ("," if len(want) == 1 else "")
            out.append(f"{k} has shape {tuple(t.shape)}, expected ({shown})")
    if "test_labels" in arrays:
        labels = arrays["test_labels"]
        if labels.is_floating_point() or labels.dtype == torch.bool:
            out.append(f"test_labels are {labels.dtype}, expected integers")
        elif "test_mu" in arrays and labels.shape[:1] != arrays["test_mu"].shape[:1]:
            out.append(f"test_labels has {labels.shape[0]} entries for {arrays['test_mu'].shape[0]} test codes")
    return out


def build_model(family: str, path: str | Path | None = None, **config) -> LatentModel:
    """A fresh model of ``family`` for the checkpoint at ``path`` (which may not exist yet):
    :func:`explorer.models.build_model` with :func:`load` as the loader of models built on
    another checkpoint (LSR-GAN's base VAE, found next to ``path`` or at ``base_path``).

    Raises:
        ValueError: unknown family or config field, or an invalid config value.
        CheckpointError: an outside checkpoint the model needs is unusable.
    """
    return _build_model(family, path=path, load=load, **config)


def load_checkpoint(path: str | Path, expost: bool = True) -> Checkpoint:
    """Load a checkpoint into a :class:`Checkpoint` (model in eval mode on CPU).

    With ``expost`` (default), the ex-post sidecar ``<name>.expost.safetensors`` is attached
    when it exists and was fitted on this file (:func:`explorer.samplers.sidecar.attach_sidecar`;
    a stale or unreadable sidecar only warns).

    Raises:
        CheckpointError: missing, corrupt, truncated or foreign file; a sidecar path; a header
            outside :data:`explorer.schema.HEADER_SCHEMA` (unknown family, wrong types, a latent
            size over 1024, deep nesting); NaN or infinite weights; app arrays of the wrong shape
            or not finite (:func:`array_problems`); a config or state dict that does not match the
            family (e.g. a wrong latent size); a chain of base models that loops or is longer
            than :data:`MAX_BASE_CHAIN`.
    """
    path = Path(path)
    chain = _LOADING.get()
    key = str(path.resolve())
    if key in chain or len(chain) >= MAX_BASE_CHAIN:
        raise CheckpointError(f"{path}: the chain of base models {' -> '.join(Path(p).name for p in (*chain, key))} "
                              f"{'loops back on itself' if key in chain else f'is over {MAX_BASE_CHAIN} files long'}")
    token = _LOADING.set((*chain, key))
    try:
        return _load_checkpoint(path, expost)
    finally:
        _LOADING.reset(token)


def _load_checkpoint(path: Path, expost: bool) -> Checkpoint:
    header = read_metadata(path)
    try:
        cls = model_class(header["family"])
        model = cls.from_config(cls.config_class.from_dict(cls.upgrade_config(header["config"])), path, load=load)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: cannot rebuild the model: {e}") from e
    _, tensors = read_safetensors(path, FORMAT, what="a Latent Explorer checkpoint")
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    arrays = {k[len("arrays."):]: v for k, v in tensors.items() if k.startswith("arrays.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the {header['family']} config "
                              f"{header['config']}: {str(e).splitlines()[0]} ...") from e
    bad_weights = [k for k in nonfinite(state) if k not in cls.unset_buffers]
    if problems := [f"weights {k} hold NaN or infinite values" for k in bad_weights] + \
            array_problems(arrays, model.latent_dim):
        raise CheckpointError(f"{path}: unusable contents: " + "; ".join(problems[:4]) +
                              (f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""))
    model.eval()
    _upgrade_names(header["meta"], arrays)
    if expost:
        attach_sidecar(model, path)
    return Checkpoint(model=model, meta=header["meta"], arrays=arrays, path=path)


def load(path: str | Path, expost: bool = True) -> LatentModel:
    """Load a model for use: an ``nn.Module`` in eval mode on CPU.

    The metadata and precomputed arrays are set as ``model.meta`` and ``model.arrays`` (declared
    on :class:`explorer.models.LatentModel`); the ex-post sidecar, if any, as ``model.expost``
    (see :func:`load_checkpoint`).

    Raises:
        CheckpointError: see :func:`load_checkpoint`.
    """
    ckpt = load_checkpoint(path, expost=expost)
    ckpt.model.meta = ckpt.meta
    ckpt.model.arrays = ckpt.arrays
    return ckpt.model
