"""The checkpoint folder layout, in one place (no other project imports).

::

    <root>/<dataset>/<name>.safetensors          a model checkpoint (explorer.checkpoint)
    <root>/<dataset>/<name>.expost.safetensors   its ex-post sampler sidecar (explorer.samplers.sidecar)
    <root>/<dataset>/<name>.resume.pt            an interrupted training run (explorer.training)
    <root>/<dataset>/backbones/classifier.safetensors   the dataset's feature classifier

``<root>`` is ``checkpoints/`` for the shipped files.
"""
from __future__ import annotations

from pathlib import Path

EXT = ".safetensors"
SIDECAR_SUFFIX = ".expost.safetensors"
RESUME_SUFFIX = ".resume.pt"
DEFAULT_ROOT = Path("checkpoints")


def is_sidecar(path: str | Path) -> bool:
    """True for ``*.expost.safetensors`` paths (ex-post sidecars, not model checkpoints)."""
    return Path(path).name.endswith(SIDECAR_SUFFIX)


def model_path(root: str | Path, dataset: str, name: str) -> Path:
    """``<root>/<dataset>/<name>.safetensors``."""
    return Path(root) / dataset / f"{name}{EXT}"


def resume_path(checkpoint: str | Path) -> Path:
    """``<dir>/<name>.safetensors`` -> ``<dir>/<name>.resume.pt`` (the run's resume file)."""
    p = Path(checkpoint)
    return p.with_name(p.name[: -len(EXT)] + RESUME_SUFFIX) if p.name.endswith(EXT) else p.with_suffix(RESUME_SUFFIX)


def model_name(path: str | Path) -> str:
    """``<dir>/<name>.safetensors`` -> ``<name>``."""
    n = Path(path).name
    return n[: -len(EXT)] if n.endswith(EXT) else Path(n).stem


def list_models(root: str | Path, dataset: str) -> dict[str, Path]:
    """``{name: path}`` of the model checkpoints in ``<root>/<dataset>/``, sorted by name
    (sidecars and the ``backbones/`` folder excluded); ``{}`` when the folder does not exist."""
    folder = Path(root) / dataset
    return {model_name(p): p for p in sorted(folder.glob(f"*{EXT}")) if not is_sidecar(p) and p.is_file()}


def sidecar_path(checkpoint: str | Path) -> Path:
    """``<dir>/<name>.safetensors`` -> ``<dir>/<name>.expost.safetensors``.

    Raises:
        ValueError: ``checkpoint`` is itself a sidecar or does not end in ``.safetensors``.
    """
    p = Path(checkpoint)
    if is_sidecar(p) or not p.name.endswith(EXT) or p.name == EXT:
        raise ValueError(f"{p}: not a model checkpoint path (<name>.safetensors, name not ending in .expost)")
    return p.with_name(p.name[: -len(EXT)] + SIDECAR_SUFFIX)


def model_path_of(sidecar: str | Path) -> Path:
    """``<dir>/<name>.expost.safetensors`` -> ``<dir>/<name>.safetensors``."""
    p = Path(sidecar)
    return p.with_name(p.name[: -len(SIDECAR_SUFFIX)] + EXT)


def classifier_path(dataset: str, root: str | Path = DEFAULT_ROOT) -> Path:
    """Where the classifier of ``dataset`` lives: ``<root>/<dataset>/backbones/classifier.safetensors``."""
    return Path(root) / dataset / "backbones" / f"classifier{EXT}"
