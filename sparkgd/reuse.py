"""Blocks of a cached input, built once and reused by every training call on it.

MLlib converts its input at every ``train`` call. A cached RDD or DataFrame does not change
while it stays cached, so sparkgd keeps the blocks it built from one and reuses them when the
same object is trained on again: a hyperparameter search (``CrossValidator``, a loop over
``stepSize``) pays the conversion once. Inputs that are not cached are converted at every
call and released after it, as before.

Kept blocks are released when their input is found unpersisted at a later training call, when
the input object is garbage-collected (at the next training call: no Spark call is made from
the garbage collector), or by :func:`release_all`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from typing import Any, Callable, Hashable, Iterator

from sparkgd.blocks import BlockedData

log = logging.getLogger("sparkgd")
_LOCK = threading.RLock()
_KEPT: dict[tuple[str, int], tuple[weakref.ref, dict[Hashable, BlockedData]]] = {}
_DEAD: list[tuple[str, int]] = []  # inputs collected since the last call


def _key(source: Any) -> tuple[str, int]:
    ctx = source.context if hasattr(source, "context") else source.sparkSession.sparkContext
    return ctx.applicationId, id(source)


def _is_cached(source: Any) -> bool:
    return bool(getattr(source, "is_cached", False))


@contextlib.contextmanager
def blocks_for(source: Any, build: Callable[[], BlockedData], variant: Hashable = ()) -> Iterator[BlockedData]:
    """The blocks of ``source`` (an RDD or DataFrame) for ``variant`` (the columns read, ...).

    ``build()`` makes them when there are none kept. For an input that is not cached the blocks
    are released on exit.
    """
    with _LOCK:
        _release_dead()
        key = _key(source)
        entry = _KEPT.get(key)
        if entry is not None and (entry[0]() is not source or not _is_cached(source)):
            _release(key)
            entry = None
        if not _is_cached(source):
            blocks = None
        elif entry is not None and variant in entry[1]:
            blocks = entry[1][variant]
        else:
            blocks = build()
            if entry is None:
                entry = _KEPT[key] = (weakref.ref(source), {})
                weakref.finalize(source, _DEAD.append, key)
            entry[1][variant] = blocks
    if blocks is not None:
        yield blocks
        return
    blocks = build()
    try:
        yield blocks
    finally:
        blocks.unpersist()


def _release(key: tuple[str, int]) -> None:
    _, kept = _KEPT.pop(key, (None, {}))
    for blocks in kept.values():
        try:
            blocks.unpersist()
        except Exception:  # its SparkContext is gone, and the blocks with it
            log.debug("could not release the blocks of a stopped application", exc_info=True)


def _release_dead() -> None:
    while _DEAD:
        _release(_DEAD.pop())


def release_all() -> None:
    """Release every kept block (their RDDs and local files)."""
    with _LOCK:
        _DEAD.clear()
        for key in list(_KEPT):
            _release(key)


def kept_count() -> int:
    """How many inputs have blocks kept."""
    return len(_KEPT)
