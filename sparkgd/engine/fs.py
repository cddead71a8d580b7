"""Model directories on any filesystem Spark reads (``hdfs://``, ``s3a://``, ``abfss://``, ``gs://``).

A local path or ``file:`` URI is written in place by :mod:`sparkgd.core.persistence`. For any
other URI the directory is written locally first, copied next to the destination as a hidden
temporary sibling through Spark's Hadoop ``FileSystem`` (with the application's Hadoop
configuration and credentials), then renamed into place: atomic where the filesystem's rename is
(HDFS, ABFS with hierarchical namespace), a copy on object stores such as S3 (``s3a://``) and GCS,
where a reader may see a partly renamed directory.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from pyspark import SparkContext

from sparkgd.engine import _spark


def is_local(path: str) -> bool:
    """A plain path or a ``file:`` URI."""
    return "://" not in path or path.startswith("file:")


def _context(sc: SparkContext | None) -> SparkContext:
    sc = sc or _spark.active_context()
    if sc is None:
        raise ValueError("a model path with a URI scheme other than file: needs an active SparkContext")
    return sc


def _sibling(sc: SparkContext, target: Any) -> Any:
    """A hidden temporary Hadoop path next to ``target``."""
    return _spark.hadoop_path(sc, f"{target.getParent().toString()}/.{target.getName()}.tmp-{uuid.uuid4().hex}")[1]


def publish(sc: SparkContext | None, write: Callable[[Path], None], path: str, overwrite: bool) -> None:
    """Write a directory with ``write(local_dir)`` and move it to ``path`` through Hadoop's FileSystem.

    An existing empty directory at ``path`` is replaced, as MLlib's ``save`` writes into one.
    """
    sc = _context(sc)
    fs = _spark.hadoop_path(sc, path)[0]

    def copy(tmp: str) -> None:
        with tempfile.TemporaryDirectory(prefix="sparkgd-model-") as local:
            write(Path(local) / "model")
            fs.copyFromLocalFile(False, True, _spark.hadoop_path(sc, str(Path(local) / "model"))[1],
                                 _spark.hadoop_path(sc, tmp)[1])

    publish_uri(sc, copy, path, overwrite, empty_ok=True, hint="use overwrite=True to replace it")


def publish_uri(sc: SparkContext | None, write: Callable[[str], None], path: str, overwrite: bool,
                empty_ok: bool = False, hint: str = "use write().overwrite().save(path)") -> None:
    """Write a directory with ``write(uri)`` (e.g. Spark's own writers) into a hidden sibling of ``path``,
    then rename it into place through Hadoop's FileSystem."""
    sc = _context(sc)
    fs, target = _spark.hadoop_path(sc, path)
    if fs.exists(target) and not overwrite:
        empty = empty_ok and fs.getFileStatus(target).isDirectory() and len(fs.listStatus(target)) == 0
        if not empty:
            raise FileExistsError(f"path {path!r} already exists; {hint}")
    tmp = _sibling(sc, target)
    fs.mkdirs(target.getParent())
    try:
        write(tmp.toString())
        if fs.exists(target):
            fs.delete(target, True)
        if not fs.rename(tmp, target):
            raise OSError(f"could not rename {tmp.toString()} to {path}")
    finally:
        if fs.exists(tmp):
            fs.delete(tmp, True)


@contextlib.contextmanager
def fetched(sc: SparkContext | None, path: str) -> Iterator[Path]:
    """A local copy of the directory at ``path``, removed on exit."""
    sc = _context(sc)
    fs, source = _spark.hadoop_path(sc, path)
    if not fs.exists(source):
        raise FileNotFoundError(f"no model at {path!r}")
    with tempfile.TemporaryDirectory(prefix="sparkgd-model-") as local:
        fs.copyToLocalFile(False, source, _spark.hadoop_path(sc, str(Path(local) / "model"))[1], True)
        yield Path(local) / "model"


class HadoopDirs:
    """Checkpoint directories under a Hadoop URI (see :class:`sparkgd.core.checkpoint.LocalDirs`)."""

    def __init__(self, sc: SparkContext | None) -> None:
        self.sc = _context(sc)

    def root(self, directory: str) -> str:
        return directory.rstrip("/")

    def join(self, directory: str, name: str) -> str:
        return f"{directory}/{name}"

    def names(self, directory: str) -> list[str]:
        fs, path = _spark.hadoop_path(self.sc, directory)
        return [st.getPath().getName() for st in fs.listStatus(path)] if fs.exists(path) else []

    def write(self, path: str, meta: dict, arrays: dict) -> None:
        from sparkgd.core import persistence

        publish(self.sc, lambda local: persistence.write_model(local, meta, arrays), path, overwrite=True)

    def read(self, path: str) -> tuple[dict, dict]:
        from sparkgd.core import persistence

        with fetched(self.sc, path) as local:
            return persistence.read_model(local, "SGDState")

    def remove(self, path: str) -> None:
        fs, hpath = _spark.hadoop_path(self.sc, path)
        fs.delete(hpath, True)
