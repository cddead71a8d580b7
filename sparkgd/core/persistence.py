"""Model directories: ``metadata.json`` plus ``.npy`` arrays, written atomically.

Nothing is pickled: arrays are saved and loaded with ``allow_pickle=False``, the metadata
is JSON, and a load checks the format name, its version, the model class and every
array's shape before a model is built.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "sparkgd-model"
FORMAT_VERSION = 1


class ModelFormatError(ValueError):
    """A model directory that is damaged, foreign, or of an unknown version."""


def local_path(path: str | os.PathLike) -> Path:
    """A local filesystem path from ``path`` or a ``file:`` URI."""
    from urllib.parse import unquote, urlparse

    s = os.fspath(path)
    if s.startswith("file:"):
        url = urlparse(s)
        if url.netloc not in ("", "localhost"):
            raise ValueError(f"a file: URI names the local host only (file:///path), got {s!r}")
        return Path(unquote(url.path))
    if "://" in s:
        raise ValueError(f"only local paths (or file: URIs) are supported for models, got {s!r}")
    return Path(s)


def write_model(path: str | os.PathLike, metadata: dict[str, Any], arrays: dict[str, np.ndarray],
                overwrite: bool = False) -> None:
    """Write a model directory atomically: into a temporary sibling, then rename.

    Raises ``FileExistsError`` when ``path`` exists and ``overwrite`` is false, unless it is an
    empty directory (as MLlib's ``save`` accepts, e.g. from ``tempfile.mkdtemp()``).
    """
    target = local_path(path)
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if target.exists() and not overwrite:
        raise FileExistsError(f"model path {str(target)!r} already exists; use overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        meta = {"format": FORMAT, "formatVersion": FORMAT_VERSION, **metadata,
                "arrays": {k: list(np.shape(v)) for k, v in arrays.items()}}
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", np.asarray(arr, dtype=np.float64), allow_pickle=False)
        with open(tmp / "metadata.json", "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
            os.rename(target, old)
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_model(path: str | os.PathLike,
               model_class: str | tuple[str, ...]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and check a directory written by :func:`write_model`."""
    src = local_path(path)
    meta_file = src / "metadata.json"
    if not meta_file.is_file():
        raise ModelFormatError(f"{str(src)!r} is not a sparkgd model directory: no metadata.json")
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as e:
        raise ModelFormatError(f"{meta_file}: damaged metadata ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ModelFormatError(f"{meta_file}: not a sparkgd model (format {found!r})")
    if meta.get("formatVersion") != FORMAT_VERSION:
        raise ModelFormatError(f"{meta_file}: format version {meta.get('formatVersion')!r} is not supported "
                               f"(this sparkgd reads version {FORMAT_VERSION})")
    wanted = (model_class,) if isinstance(model_class, str) else model_class
    if meta.get("class") not in wanted:
        raise ModelFormatError(f"{meta_file}: holds a {meta.get('class')!r}, expected {' or '.join(wanted)}")
    arrays = {}
    for name, shape in meta.get("arrays", {}).items():
        file = src / f"{name}.npy"
        try:
            arr = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ModelFormatError(f"{file}: damaged array ({e})") from None
        if list(arr.shape) != list(shape) or arr.dtype != np.float64:
            raise ModelFormatError(f"{file}: shape {arr.shape} / {arr.dtype}, metadata says {tuple(shape)} / float64")
        if not np.isfinite(arr).all():
            raise ModelFormatError(f"{file}: holds NaN or infinite values")
        arrays[name] = arr
    return meta, arrays
