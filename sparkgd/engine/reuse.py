"""Blocks of a cached input, built once and reused by every training call on it.

MLlib converts its input at every ``train`` call. A cached input does not change while Spark
keeps it cached, so sparkgd keeps the blocks it built from one and reuses them while that cache
lives: a hyperparameter search (``CrossValidator``, a loop over ``stepSize``) pays the
conversion once. Inputs that are not cached are converted at every call and their blocks
dropped after it.

The key is Spark's own identity of the cached data: the id of the RDD that holds it (the RDD
itself, or for a DataFrame the in-memory relation Spark's cache manager built). Re-caching a
DataFrame, even under the same object after ``spark.catalog.clearCache()``, makes a new one,
so a changed input is never trained on from old blocks. Blocks whose input is no longer cached
are dropped at the next training call, or by :func:`release_all`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Callable, Hashable, Iterator

from sparkgd.engine import _spark
from sparkgd.engine.blocks import BlockedData

log = logging.getLogger("sparkgd")
_LOCK = threading.RLock()
_KEPT: dict[tuple[str, int], dict[Hashable, BlockedData]] = {}


def cache_key(source: Any) -> tuple[str, int] | None:
    """``(application id, id of the RDD holding the cached data)``, or ``None`` when not cached."""
    from pyspark import RDD

    if isinstance(source, RDD):
        sc = source.context
        if not source.is_cached:
            return None
        rdd_id = source.id()
    else:
        sc = source.sparkSession.sparkContext
        rdd_id = _spark.dataframe_cache_id(source)
        if rdd_id is None:
            return None
    return sc.applicationId, rdd_id


def _prune(sc: Any) -> None:
    """Drop the blocks of inputs that Spark no longer keeps cached."""
    if not _KEPT:
        return
    alive = _spark.persistent_rdd_ids(sc)
    app = sc.applicationId
    for key in list(_KEPT):
        if key[0] != app or alive is None or key[1] not in alive:
            _release(key)


@contextlib.contextmanager
def blocks_for(source: Any, build: Callable[[], BlockedData], variant: Hashable = ()) -> Iterator[BlockedData]:
    """The blocks of ``source`` (an RDD or DataFrame) for ``variant`` (the columns read, ...).

    ``build()`` makes them when none are kept. For an input that is not cached they are
    dropped on exit.
    """
    from pyspark import RDD

    if not isinstance(source, RDD) and _spark.is_remote():  # no SparkContext to ask Spark's cache identity of
        blocks = build()
        try:
            yield blocks
        finally:
            blocks.unpersist()
        return
    sc = source.context if isinstance(source, RDD) else source.sparkSession.sparkContext
    with _LOCK:
        _prune(sc)
        key = cache_key(source)
        blocks = None
        if key is not None:
            kept = _KEPT.setdefault(key, {})
            if variant not in kept:
                kept[variant] = build()
            blocks = kept[variant]
    if blocks is not None:
        try:
            yield blocks
        finally:
            blocks.release_tasks()
        return
    blocks = build()
    try:
        yield blocks
    finally:
        blocks.release_tasks()
        blocks.unpersist()


def _release(key: tuple[str, int]) -> None:
    for blocks in _KEPT.pop(key, {}).values():
        try:
            blocks.unpersist()
        except Exception:  # its SparkContext is gone, and the blocks with it
            log.debug("could not release the blocks of a stopped application", exc_info=True)


def release_all() -> None:
    """Drop every kept block from Spark's storage."""
    with _LOCK:
        for key in list(_KEPT):
            _release(key)


def kept_count() -> int:
    """How many cached inputs have blocks kept."""
    return len(_KEPT)
