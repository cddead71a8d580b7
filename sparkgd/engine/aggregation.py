"""One iteration's sums over the cached blocks, combined on the executors like MLlib's ``treeAggregate``.

Each iteration's weights go out as a broadcast (never in the job's properties or its closure);
each task folds its cached block into ``(gradient sum, loss sum, rows, weight sum)``; the
partial sums then move up the :class:`~sparkgd.core.tree.CombineTree` through one Spark
shuffle per level, each reducer folding its children in index order, and the last level runs
on an executor. So the driver sends one broadcast and receives one accumulator per iteration,
as ``treeAggregate(depth, finalAggregateOnExecutor = true)`` in Spark 4.x's ``GradientDescent``.

:class:`IterationSums` uses :mod:`sparkgd.engine.resident` tasks instead whenever they can
run, and this job otherwise; both combine in the tree's order, so the results are the same
bits either way.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, Iterable, Iterator

import numpy as np
from pyspark import RDD

from sparkgd.core.block import Block, block_sums, comb
from sparkgd.core.tree import CombineTree, Node
from sparkgd.engine import _spark, turns
from sparkgd.engine.resident import FirstTasks, Lost, ResidentTasks, off_reason
from sparkgd.engine.turns import TURNS

log = logging.getLogger("sparkgd")
SMALL_EXTRA = 64 * 1024  # bytes over one vector the driver may receive per iteration to save a stage
MAX_RETRY_GAP = 64  # iterations between attempts to start resident tasks, at most
QUIET_WAIT = 1.0  # seconds a call may wait, in all, for other jobs to end before starting resident tasks
_TOLD: set[tuple[str, str]] = set()  # (application, reason) already logged: once per application


def _leaf(blocks: Iterable[Block], *, tree: CombineTree, weights: Any, seed: int, kw: dict
          ) -> Iterator[tuple[int, tuple[int, Any]]]:
    w = weights.value
    for block in blocks:
        parent = tree.parent((0, block.partition))
        yield parent[1], (block.partition, block_sums(block, w, seed=seed, **kw))


def _node(items: Iterable[tuple[int, tuple[int, Any]]], *, tree: CombineTree, level: int
          ) -> Iterator[tuple[int, tuple[int, Any]]]:
    """Fold the children (level ``level - 1``) that arrived here into their parents, in index order."""
    by_parent: dict[int, dict[int, Any]] = {}
    for parent, (child, acc) in items:
        by_parent.setdefault(parent, {})[child] = acc
    for index, children in sorted(by_parent.items()):
        node: Node = (level, index)
        acc = tree.value(node, {(level - 1, c): v for c, v in children.items()}, comb)
        yield tree.parent(node)[1], (index, acc)


def top_level(tree: CombineTree, num_weights: int) -> int:
    """The lowest tree level whose nodes the driver may collect: their bytes exceed one vector by at most
    :data:`SMALL_EXTRA`.

    MLlib's driver receives one vector per iteration (the root is combined on an executor). For
    wide models (``8 d > SMALL_EXTRA``) that is what sparkgd does too; for narrow ones each level
    the driver combines itself saves a Spark stage (about 100 ms of Python tasks) for a few
    hundred bytes, less than the status updates of the stage's tasks would bring.
    """
    for level in range(tree.height + 1):
        if (tree.width(level) - 1) * 8 * num_weights <= SMALL_EXTRA:
            return level
    return tree.height


def tree_aggregate(blocks_rdd: RDD, tree: CombineTree, weights: np.ndarray, seed: int, kw: dict) -> Any:
    """The root of ``tree`` over ``blocks_rdd`` for these weights and seed, computed by Spark jobs."""
    sc = blocks_rdd.context
    bc = sc.broadcast(np.ascontiguousarray(weights, dtype=np.float64))
    top = top_level(tree, len(weights))
    try:
        rdd = blocks_rdd.mapPartitions(functools.partial(_leaf, tree=tree, weights=bc, seed=seed, kw=kw))
        for level in range(1, top + 1):
            rdd = rdd.partitionBy(tree.width(level), _identity).mapPartitions(
                functools.partial(_node, tree=tree, level=level))
        pieces = {(top, index): acc for _, (index, acc) in rdd.collect()}
        return tree.combine(pieces, comb) if top < tree.height else pieces[tree.root]
    finally:
        bc.destroy(blocking=False)


def _identity(key: int) -> int:
    return key


class IterationSums:
    """Each iteration's ``(gradient sum, loss sum, rows, weight sum)``, or ``None`` when no row was sampled.

    Iterations run while this process's turn is held (:mod:`sparkgd.engine.turns`). From the
    first call on it runs :class:`~sparkgd.engine.resident.ResidentTasks`, one task per free
    slot (at most one per partition), once no other job of the application runs (waiting up to
    :data:`QUIET_WAIT` seconds per call in all); until then, and when they hand their slots over,
    it runs :func:`tree_aggregate` and tries again after 1, 2, 4, ... iterations (at once after a
    hand-over). A failed start backs off 2, 4, ... :data:`MAX_RETRY_GAP` iterations.
    """

    def __init__(self, blocks_rdd: RDD, depth: int, kw: dict, num_weights: int,
                 first: FirstTasks | None = None) -> None:
        self._rdd = blocks_rdd
        self._first = first  # the tasks that built the blocks, waiting to serve
        self._sc = blocks_rdd.context
        self._depth = depth
        self._kw = kw
        self._d = num_weights
        self.tree = CombineTree(blocks_rdd.getNumPartitions(), depth)
        self._resident: ResidentTasks | None = None
        self._next_try, self._gap = 1, 2  # from the first call: a Spark job would read the blocks all the same
        self._calls = 0
        self._turn: object | None = None  # the token holding this process's turn; False: none; None: not asked
        self._own: object | None = None  # the token, when this object took the turn itself
        self._busy_gap = 1
        self._wait_left = QUIET_WAIT
        self.resident_calls = 0  # iterations the resident tasks served

    def __call__(self, weights: np.ndarray, seed: int) -> Any:
        self._calls += 1
        self._take_turn()
        if self._resident is None and self._calls >= self._next_try:
            self._start()
        if self._resident is not None:
            try:
                acc = self._resident(weights, seed)
                self.resident_calls += 1
                return acc
            except Lost as e:
                self._drop()
                if e.cancelled is not None:
                    raise e.cancelled from None
                log.warning("resident tasks lost (%s): this iteration runs as a Spark job", e)
        return tree_aggregate(self._rdd, self.tree, weights, seed, self._kw)

    def _take_turn(self) -> None:
        """Hold this process's turn on the executors while iterating (:mod:`sparkgd.engine.turns`):
        the training call's, or this object's own when it runs outside one."""
        if self._turn is None:
            self._turn = turns.current()
            if self._turn is None:
                self._turn = self._own = self if TURNS.acquire(self) else False
        elif self._turn and TURNS.should_yield(self._turn):
            tasks, self._resident = self._resident, None
            if tasks is not None:
                tasks.stop()
            TURNS.release(self._turn)
            if not TURNS.acquire(self._turn):
                self._turn = False
            self._next_try = min(self._next_try, self._calls)

    def _start(self) -> None:
        first, self._first = self._first, None
        if first is not None:
            try:
                self._resident = ResidentTasks.adopt(first, self._depth, self._kw, self._d)
                return
            except Lost as e:
                if e.cancelled is not None:
                    raise e.cancelled from None
                log.info("%s: starting resident tasks over the cached blocks", e)
        if not self._quiet():
            self._busy()
            return
        reason = off_reason(self._sc)
        free = None if reason else _spark.free_slots(self._sc)
        if reason or free is None:
            if reason and (self._sc.applicationId, reason) not in _TOLD:
                _TOLD.add((self._sc.applicationId, reason))
                log.info("resident tasks are off (%s): one Spark job per iteration", reason)
            self._next_try = float("inf")
            return
        tasks = min(self.tree.num_partitions, free)
        try:
            if tasks < 1:
                raise Lost("no free task slot", busy=True)
            self._resident = ResidentTasks(self._sc, self._rdd, tasks, self._depth, self._kw, self._d)
        except Lost as e:
            if e.cancelled is not None:
                raise e.cancelled from None
            if e.busy:  # other work holds or wants the slots: try again once it is done
                log.debug("resident tasks did not start (%s): this iteration runs as a Spark job", e)
                self._busy()
            else:
                self._back_off(f"resident tasks did not start ({e})")
            return
        self._busy_gap = 1

    def _quiet(self) -> bool:
        """Wait until no other job of the application runs (for 50 ms), :data:`QUIET_WAIT` seconds per call in all.

        Other work goes first: resident tasks started next to a running job would take its slots,
        and a Spark job per iteration would queue behind it all the same.
        """
        tracker = self._sc.statusTracker()
        start = time.monotonic()
        deadline = start + max(self._wait_left, 0.0)
        since = None
        try:
            while True:
                now = time.monotonic()
                if tracker.getActiveJobsIds():
                    since = None
                elif since is None:
                    since = now
                elif now - since >= 0.05:
                    return True
                if now > deadline:
                    return since is not None
                time.sleep(0.01)
        finally:
            self._wait_left -= time.monotonic() - start

    def _busy(self) -> None:
        """Other work kept the slots: one Spark job per iteration, and try again after 1, 2, 4, ... iterations."""
        self._next_try = self._calls + self._busy_gap
        self._busy_gap = min(2 * self._busy_gap, MAX_RETRY_GAP)

    def _back_off(self, why: str) -> None:
        self._next_try = self._calls + self._gap
        log.info("%s: one Spark job per iteration, trying again at iteration %d", why, self._next_try)
        self._gap = min(2 * self._gap, MAX_RETRY_GAP)

    def _drop(self) -> None:
        tasks, self._resident = self._resident, None
        if tasks is not None:
            tasks.stop()
            if tasks.handed_over:  # start again once the jobs they were handed over to are done
                self._next_try = self._calls + 1
            else:
                self._back_off("resident tasks ended")

    def close(self) -> None:
        first, self._first = self._first, None
        if first is not None:
            first.release(raise_error=False)
        tasks, self._resident = self._resident, None
        if tasks is not None:
            tasks.stop()
        if self._own is not None:
            TURNS.release(self._own)
