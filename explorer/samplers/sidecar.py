"""Ex-post sampler sidecars: ``<name>.expost.safetensors`` beside a model checkpoint.

Shipped checkpoints (whose SHA-256 other files record) are never rewritten; ``gmm-100`` and
``two-stage`` (:class:`ExPostSamplers`) live in a sidecar. Layout:

- tensors ``gmm-100.weights (K,)``, ``gmm-100.means (K, d)``, ``gmm-100.scale_tril_packed
  (K, d(d+1)/2)`` (the lower triangles of the Cholesky factors, row-major, as
  ``torch.tril_indices``), ``gmm-100.fitted ()``;
- tensors ``two-stage.<key>``: the :class:`SecondStageVAE` state dict;
- string metadata ``format`` (``latent-explorer-expost/1``) and ``meta`` (JSON): ``checkpoint``
  (file name), ``checkpoint_sha256``, ``family``, ``latent_dim``, ``dataset``, ``split``
  (``train``), ``n_codes``, ``codes`` (what was fitted on), ``seed``, ``command``, ``device``,
  ``wall_seconds`` (and per part), ``created_at``, ``versions``, ``gmm_100`` (K, converged,
  n_iter, lower bound), ``two_stage`` (hyperparameters, ``history`` of per-epoch losses, final
  γ), ``sampler_coverage`` and ``sampler_modes`` (what the app shows).

:func:`attach_sidecar` (called by :func:`explorer.checkpoint.load_checkpoint`) hangs a sidecar
on its model: then ``model.samplers`` also lists ``gmm-100`` and ``two-stage``. A sidecar whose
recorded SHA-256 differs from the checkpoint's (the model was retrained) or that cannot be read
is *not* used: a ``UserWarning`` names both files and the command to refit, and the model loads
without the two samplers. Names ending in ``.expost`` are reserved: a model may not be called
``x.expost``. Fitting and the CLI are in :mod:`explorer.expost`.
"""
from __future__ import annotations

import json
import shlex
import warnings
from pathlib import Path

from safetensors.torch import save as st_save

from ..io import CheckpointError, atomic_write_bytes, file_sha256, json_field, nonfinite, read_safetensors
from ..layout import SIDECAR_SUFFIX, is_sidecar, model_path_of, sidecar_path
from .expost import GMM_COMPONENTS, SAMPLERS, ExPostSamplers
from .two_stage import TwoStageConfig

FORMAT = "latent-explorer-expost/1"
SUFFIX = SIDECAR_SUFFIX

__all__ = ["FORMAT", "SUFFIX", "SidecarError", "is_sidecar", "sidecar_path", "model_path_of", "refit_command",
           "save_sidecar", "read_sidecar_meta", "load_sidecar", "attach_sidecar"]


class SidecarError(CheckpointError):
    """A sidecar is unreadable, foreign, or does not fit its model; the message names the file.
    A :class:`explorer.io.CheckpointError`, so one ``except`` catches every unusable file."""


def refit_command(checkpoint: str | Path) -> str:
    """The shell command that refits the sidecar of ``checkpoint``."""
    return f"python -m explorer.expost {shlex.quote(str(checkpoint))}"


def save_sidecar(ex: ExPostSamplers, checkpoint: str | Path, meta: dict) -> Path:
    """Write ``ex`` and JSON-able ``meta`` to the sidecar of ``checkpoint`` atomically.

    ``meta`` must hold ``checkpoint_sha256``; it is stored as ``ex.meta`` too.

    Raises:
        ValueError: no ``checkpoint_sha256`` in ``meta``. TypeError: ``meta`` is not JSON-able.
    """
    if not meta.get("checkpoint_sha256"):
        raise ValueError("sidecar meta needs the checkpoint_sha256 of the model it was fitted on")
    path = sidecar_path(checkpoint)
    atomic_write_bytes(path, st_save(ex.tensors(), metadata={"format": FORMAT, "meta": json.dumps(meta)}))
    ex.meta = dict(meta)
    return path


def read_sidecar_meta(path: str | Path) -> dict:
    """The JSON metadata of a sidecar file, without its tensors.

    Raises:
        SidecarError: missing, unreadable or foreign file, or damaged metadata.
    """
    md, _ = read_safetensors(path, FORMAT, tensors=False, what="an ex-post sidecar", error=SidecarError)
    return json_field(md, "meta", path, error=SidecarError)


def load_sidecar(path: str | Path, latent_dim: int) -> ExPostSamplers:
    """Read a sidecar into :class:`ExPostSamplers` (CPU, eval mode), without any hash check.

    Raises:
        SidecarError: unreadable, foreign or truncated file, NaN or infinite values, or tensors
            that do not fit ``latent_dim``.
    """
    md, tensors = read_safetensors(path, FORMAT, what="an ex-post sidecar", error=SidecarError)
    if bad := nonfinite(tensors):
        raise SidecarError(f"{path}: NaN or infinite values in {', '.join(bad[:5])}")
    meta = json_field(md, "meta", path, error=SidecarError)
    try:
        cfg = TwoStageConfig.from_dict(meta.get("two_stage", {}).get("config", {}))
        k = int(meta.get("gmm_100", {}).get("n_components", GMM_COMPONENTS))
        ex = ExPostSamplers(latent_dim, cfg, k, meta=meta)
        ex.load_tensors(tensors)
    except (ValueError, TypeError, RuntimeError) as e:
        raise SidecarError(f"{path}: does not fit a d = {latent_dim} model: {str(e).splitlines()[0]}") from e
    return ex.eval()


def attach_sidecar(model, checkpoint: str | Path) -> bool:
    """Attach the sidecar of ``checkpoint`` (if there is one) to ``model`` as ``model.expost``.

    Returns True when attached. A sidecar fitted on another version of the checkpoint (recorded
    SHA-256 differs) or an unreadable one is left out with a ``UserWarning`` naming both files
    and the refit command; the model itself is unaffected.
    """
    checkpoint = Path(checkpoint)
    path = sidecar_path(checkpoint)
    if not path.is_file():
        return False
    fix = f"refit with `{refit_command(checkpoint)}`"
    try:
        meta = read_sidecar_meta(path)
        digest = file_sha256(checkpoint)
        recorded = str(meta.get("checkpoint_sha256", ""))
        if recorded != digest:
            warnings.warn(f"{path} was fitted on another version of {checkpoint} (SHA-256 {recorded[:12] or '?'}... "
                          f"recorded, {digest[:12]}... now: the model was retrained or replaced); its samplers "
                          f"{', '.join(SAMPLERS)} are left out; {fix}", UserWarning, stacklevel=3)
            return False
        ex = load_sidecar(path, model.latent_dim)
    except (SidecarError, OSError) as e:
        warnings.warn(f"{path}: unusable ex-post sidecar of {checkpoint} ({e}); its samplers {', '.join(SAMPLERS)} "
                      f"are left out; {fix}", UserWarning, stacklevel=3)
        return False
    model.attach_expost(ex)
    return True
