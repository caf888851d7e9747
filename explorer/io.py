"""File helpers every layer may use: atomic writes, file hashes, one safetensors reader with a
format check, the error type for unusable files, a checked reader for results tables, and library
versions for provenance. Imports only explorer.schema (what a file may hold).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path

import torch
from safetensors import safe_open

from .schema import table_problem

PACKAGES = ("torch", "torchvision", "numpy", "scikit-learn", "umap-learn", "safetensors", "scipy")


class CheckpointError(RuntimeError):
    """A checkpoint, sidecar or cache file is missing, corrupt, truncated, foreign or
    inconsistent; the message names the file."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename); the
    temp file is removed when anything fails."""
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


def nonfinite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors in ``tensors`` holding NaN or an infinity."""
    return [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def check_writable_folder(folder: str | Path, need_bytes: int, what: str = "--out") -> None:
    """Check, before any long work, that files can be written into ``folder`` (created if
    missing) and that it has ``need_bytes`` free.

    Raises:
        ValueError: one line naming ``what`` and the folder: a file where a folder should be, a
            folder that cannot be created or written (read-only, permissions), or too little space.
    """
    folder = Path(folder)
    for p in (folder, *folder.parents):
        if p.exists() and not p.is_dir():
            raise ValueError(f"{what} {folder}: {p} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"{what} {folder}: cannot write there ({e.strerror or e})") from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise ValueError(f"{what} {folder}: {free / 2**20:.0f} MB free; this run needs about "
                         f"{need_bytes / 2**20:.0f} MB (checkpoint, resume file and their temp copies)")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_safetensors(path: str | Path, fmt: str | None, *, tensors: bool = True, what: str = "a file",
                     error: type[CheckpointError] = CheckpointError, hint: str = ""
                     ) -> tuple[dict[str, str], dict[str, torch.Tensor] | list[str]]:
    """Open a safetensors file, check its ``format`` metadata, and read it.

    Args:
        fmt: the required ``format`` string, or None for no check.
        tensors: read every tensor (CPU) when True; only list the tensor names when False.
        what: the expected kind of file with its article, for messages ("an ex-post sidecar").
        error: the :class:`CheckpointError` subclass to raise.
        hint: appended to every message (e.g. how to make such a file).

    Returns:
        ``(metadata, tensors)``: the string metadata and ``{name: tensor}`` (or the list of names).

    Raises:
        error: no such file; not a readable safetensors file (corrupt or truncated); another
            ``format``. Each message names the file.
    """
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    if not path.is_file():
        raise error(f"{path}: no such file (expected {what}){tail}")
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
            if fmt is not None and md.get("format") != fmt:
                raise error(f"{path}: not {what} (format {md.get('format')!r}, expected {fmt!r}){tail}")
            body = {k: f.get_tensor(k) for k in f.keys()} if tensors else list(f.keys())
    except CheckpointError:
        raise
    except Exception as e:  # SafetensorError / OSError variants
        raise error(f"{path}: cannot read {what}: not a readable safetensors file (corrupt or truncated?): "
                    f"{e}{tail}") from e
    return md, body


def json_field(md: dict[str, str], key: str, path: str | Path, default: str | None = None,
               error: type[CheckpointError] = CheckpointError):
    """``json.loads(md[key])`` (``default`` when the key is absent and a default is given).

    Raises:
        error: the key is missing (and no default), its value is not JSON, or it is nested too
            deeply for Python's parser (RecursionError); names the file.
    """
    try:
        return json.loads(md[key] if default is None else md.get(key, default))
    except (KeyError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        raise error(f"{path}: damaged metadata ({str(e)[:200]})") from e
    except RecursionError:
        raise error(f"{path}: damaged metadata ({key} is JSON nested too deeply to read)") from None


MAX_TABLE_BYTES = 64 * 2**20  # a full zoo's table is ~150 KB


def read_table(path: str | Path) -> dict:
    """A results table written by :func:`explorer.metrics.protocol.write_table`, checked by :func:`explorer.schema.table_problem`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: one line naming the file and why it is not a usable table: larger than
            :data:`MAX_TABLE_BYTES`, not UTF-8, not JSON, or not a table's shape.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_TABLE_BYTES:
        raise ValueError(f"{path.name}: {size:,} bytes; a results table is at most {MAX_TABLE_BYTES:,}")
    try:
        table = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path.name}: not UTF-8 text; a results table is JSON") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path.name}: not JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise ValueError(f"{path.name}: JSON nested too deep to read") from None
    if (problem := table_problem(table)) is not None:
        raise ValueError(f"{path.name} is not a results table: {problem}")
    return table


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Python's version and the installed version of each package (None when absent), for provenance."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            out[pkg] = None
    return out
