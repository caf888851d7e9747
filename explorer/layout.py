"""The checkpoint folder layout, in one place (no other project imports).

::

    <root>/<dataset>/<name>.safetensors          a model checkpoint (explorer.checkpoint)
    <root>/<dataset>/<name>.expost.safetensors   its ex-post sampler sidecar (explorer.samplers.sidecar)
    <root>/<dataset>/<name>.resume.pt            an interrupted training run (explorer.training)
    <root>/<dataset>/backbones/classifier.safetensors   the dataset's feature classifier

``<root>`` is ``checkpoints/`` for the shipped files.
"""
from __future__ import annotations

import re
from pathlib import Path

EXT = ".safetensors"
SIDECAR_SUFFIX = ".expost.safetensors"
RESUME_SUFFIX = ".resume.pt"
DEFAULT_ROOT = Path("checkpoints")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a model name: a safe slug, as train.py --name


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
    """``{name: path}`` of the usable model checkpoints in ``<root>/<dataset>/``, sorted by name
    (sidecars and the ``backbones/`` folder excluded; entries :func:`scan_models` refuses left out);
    ``{}`` when the folder does not exist."""
    return scan_models(root, dataset)[0]


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a model (it must match :data:`NAME_PATTERN` and not end in
    ``.expost``), or None."""
    if not NAME_PATTERN.fullmatch(name):
        return (f"model name {name[:80]!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', starting "
                f"with a letter or digit")
    if name.endswith(".expost"):
        return f"model name {name!r} is not allowed: names ending in .expost are ex-post sidecars"
    return None


def scan_models(root: str | Path, dataset: str) -> tuple[dict[str, Path], dict[str, str]]:
    """Every ``*.safetensors`` entry of ``<root>/<dataset>/`` except sidecars, split into
    ``({name: path}, {name: why it is unusable})``, sorted by name.

    Unusable: a name outside :data:`NAME_PATTERN`; a dangling symlink or a symlink loop; a link
    that resolves outside ``root``; anything but a regular file. Nothing is opened."""
    folder = Path(root) / dataset
    ok, broken = {}, {}
    if not folder.is_dir():
        return ok, broken
    top = None
    for p in sorted(folder.glob(f"*{EXT}")):
        if is_sidecar(p):
            continue
        name = model_name(p)
        if problem := name_problem(name):
            broken[name] = problem
            continue
        if not p.is_symlink():  # the common case, without resolving a path (this runs on every app rerun)
            if p.is_file():
                ok[name] = p
            else:
                broken[name] = f"{p.name} is not a regular file"
            continue
        top = top or Path(root).resolve()
        try:
            real = p.resolve(strict=True)
        except (OSError, RuntimeError) as e:  # dangling link; RuntimeError: a symlink loop
            broken[name] = f"{p.name} is a broken link ({getattr(e, 'strerror', None) or e})"
            continue
        if not real.is_relative_to(top):
            broken[name] = f"{p.name} links outside the checkpoint folder; only files inside it are read"
        elif not real.is_file():
            broken[name] = f"{p.name} is not a regular file"
        else:
            ok[name] = p
    return ok, broken


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
