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

Under Spark Connect the key is the session and the input's plan, as Spark's cache manager matches
them, and kept blocks are checked against a stamp of the input's cached content at every reuse
(see :func:`stamp`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Callable, Hashable, Iterator

from sparkgd.engine import _spark, turns
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
def blocks_for(source: Any, build: Callable[[], BlockedData], variant: Hashable = (),
               columns: list[str] | None = None) -> Iterator[BlockedData]:
    """The blocks of ``source`` (an RDD or DataFrame) for ``variant`` (the columns read, ...).

    ``build()`` makes them when none are kept. For an input that is not cached they are
    dropped on exit. ``columns``: the DataFrame columns the blocks are built from (under Spark
    Connect, where their content stamps the kept blocks).
    """
    from pyspark import RDD

    if not isinstance(source, RDD) and _spark.is_remote():
        with _remote_blocks_for(source, build, variant, columns) as blocks:
            yield blocks
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
            turns.release(blocks.rdd.id())
        return
    blocks = build()
    try:
        yield blocks
    finally:
        turns.release(blocks.rdd.id())  # builders no iteration took: their job must end before the unpersist
        blocks.unpersist()


def _release(key: tuple[str, int]) -> None:
    for blocks in _KEPT.pop(key, {}).values():
        _drop(blocks)


def release_all() -> None:
    """Drop every kept block from Spark's storage."""
    with _LOCK:
        for key in list(_KEPT):
            _release(key)
        for entries in _REMOTE.values():
            for _, _, blocks in entries:
                _drop(blocks)
        _REMOTE.clear()


def kept_count() -> int:
    """How many cached inputs have blocks kept."""
    return len(_KEPT) + sum(len(e) for e in _REMOTE.values())


# Under Spark Connect there is no SparkContext to ask which RDD holds a cached DataFrame. Spark's
# cache manager matches a DataFrame to its cached data by the plan (``sameSemantics``); the same
# plan cached again (after ``unpersist``) may hold other data, and Spark keeps blocks cached from
# the old data. So kept blocks carry a stamp of the input's cached content, one cheap JVM job
# (row count and an order-sensitive XOR of ``xxhash64`` per partition), checked at every reuse.
_REMOTE: dict[tuple[str, int, Hashable], list[tuple[Any, list, Any]]] = {}


def _is_cached(df: Any) -> bool:
    level = df.storageLevel
    return bool(level.useMemory or level.useDisk)


def stamp(df: Any, columns: list[str] | None) -> list | None:
    """``[(partition, rows, xor of xxhash64(row position, columns))]`` of ``df``, or ``None`` if Spark cannot
    hash those columns."""
    from pyspark.sql import functions as F

    cols = [F.col(c) for c in (columns or df.columns)]
    try:
        rows = df.select(F.spark_partition_id().alias("p"),
                         F.xxhash64(F.monotonically_increasing_id(), *cols).alias("h")) \
            .groupBy("p").agg(F.count(F.lit(1)).alias("n"), F.bit_xor("h").alias("x")).collect()
    except Exception as e:  # a column type Spark does not hash (a map): no reuse
        log.debug("no stamp for the input (%s): its blocks are not kept", e)
        return None
    return sorted((int(r["p"]), int(r["n"]), int(r["x"])) for r in rows)


def _drop(blocks: Any) -> None:
    try:
        blocks.unpersist()
    except Exception:  # its SparkContext or Connect session is gone, and the blocks with it
        log.debug("could not release the blocks of a stopped application or closed session", exc_info=True)


@contextlib.contextmanager
def _remote_blocks_for(source: Any, build: Callable[[], Any], variant: Hashable,
                       columns: list[str] | None) -> Iterator[Any]:
    """:func:`blocks_for` under Spark Connect: kept while the input stays cached with the same stamp."""
    session = source.sparkSession.session_id
    with _LOCK:
        for key in [k for k in _REMOTE if k[0] == session]:  # inputs no longer cached: drop their blocks
            kept = []
            for e in _REMOTE[key]:
                if _is_cached(e[0]):
                    kept.append(e)
                else:
                    log.debug("kept blocks released: their input is no longer cached")
                    _drop(e[2])
            _REMOTE[key] = kept
        found = None
        mark = stamp(source, columns) if _is_cached(source) else None
        if mark is not None:
            key = (session, source.semanticHash(), variant)
            others = []
            for e in _REMOTE.get(key, []):
                if not e[0].sameSemantics(source):
                    others.append(e)
                elif e[1] == mark and found is None:
                    found = e
                else:  # cached again with other content
                    log.debug("kept blocks released: the input's stamp changed from %s to %s", e[1], mark)
                    _drop(e[2])
            found = found or (source, mark, build())
            _REMOTE[key] = others + [found]
    if found is not None:
        yield found[2]
        return
    blocks = build()
    try:
        yield blocks
    finally:
        blocks.unpersist()
