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
from typing import Any, Iterable, Iterator

import numpy as np
from pyspark import RDD

from sparkgd.core import sums
from sparkgd.core.block import Block, FoldSpec, fold
from sparkgd.core.sums import Sums, merge
from sparkgd.core.tree import CombineTree, Node
from sparkgd.engine import _spark, memory, turns
from sparkgd.engine.resident import Crew, Lost, off_reason
from sparkgd.engine.starts import QuietBudget, StartPolicy

log = logging.getLogger("sparkgd")
SMALL_EXTRA = 64 * 1024  # bytes over one vector the driver may receive per iteration to save a stage
_TOLD: set[tuple[str, str]] = set()  # (application, reason) already logged: once per application


def _leaf(blocks: Iterable[Block], *, tree: CombineTree, weights: Any, seed: int, spec: FoldSpec
          ) -> Iterator[tuple[int, tuple[int, bytes]]]:
    w = weights.value
    for block in blocks:
        parent = tree.parent((0, block.partition))
        yield parent[1], (block.partition, sums.encode(fold(block, w, seed, spec)))


def _node(items: Iterable[tuple[int, tuple[int, bytes]]], *, tree: CombineTree, level: int, num_weights: int
          ) -> Iterator[tuple[int, tuple[int, bytes]]]:
    """Fold the children (level ``level - 1``) that arrived here into their parents, in index order."""
    by_parent: dict[int, dict[int, Sums | None]] = {}
    for parent, (child, data) in items:
        by_parent.setdefault(parent, {})[child] = sums.decode(data, num_weights)[0]
    for index, children in sorted(by_parent.items()):
        node: Node = (level, index)
        value = tree.value(node, {(level - 1, c): v for c, v in children.items()}, merge)
        yield tree.parent(node)[1], (index, sums.encode(value))


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


def tree_aggregate(blocks_rdd: RDD, tree: CombineTree, weights: np.ndarray, seed: int, spec: FoldSpec
                   ) -> Sums | None:
    """The root of ``tree`` over ``blocks_rdd`` for these weights and seed, computed by Spark jobs."""
    sc = blocks_rdd.context
    bc = sc.broadcast(np.ascontiguousarray(weights, dtype=np.float64))
    d = len(weights)
    top = top_level(tree, d)
    try:
        rdd = blocks_rdd.mapPartitions(functools.partial(_leaf, tree=tree, weights=bc, seed=seed, spec=spec))
        for level in range(1, top + 1):
            rdd = rdd.partitionBy(tree.width(level), _identity).mapPartitions(
                functools.partial(_node, tree=tree, level=level, num_weights=d))
        pieces = {(top, index): sums.decode(data, d)[0] for _, (index, data) in rdd.collect()}
        return tree.combine(pieces, merge) if top < tree.height else pieces[tree.root]
    finally:
        bc.destroy(blocking=False)


def _identity(key: int) -> int:
    return key


class IterationSums:
    """Each iteration's :class:`~sparkgd.core.sums.Sums`, or ``None`` when no row was sampled.

    Iterations run while this process's turn is held (:mod:`sparkgd.engine.turns`). From the
    first call on it runs :class:`~sparkgd.engine.resident.Crew`, one task per free
    slot (at most one per partition), once no other job of the application runs (waiting up to
    :data:`~sparkgd.engine.timeouts.QUIET_WAIT` seconds per call in all); until then, and when they
    hand their slots over, it runs :func:`tree_aggregate`; when it tries again is the
    :class:`~sparkgd.engine.starts.StartPolicy`'s decision.
    """

    def __init__(self, blocks_rdd: RDD, depth: int, spec: FoldSpec, num_weights: int,
                 first: Crew | None = None, block_bytes: list[int] | None = None) -> None:
        self._rdd = blocks_rdd
        self._block_bytes = block_bytes or []
        self._first = first  # the tasks that built the blocks, waiting to serve
        self._sc = blocks_rdd.context
        self._depth = depth
        self._spec = spec
        self._d = num_weights
        self.tree = CombineTree(blocks_rdd.getNumPartitions(), depth)
        self._resident: Crew | None = None
        self._starts = StartPolicy()
        self._calls = 0
        self._turn = turns.Holding()
        self._quiet = QuietBudget()
        self.resident_calls = 0  # iterations the resident tasks served

    def __call__(self, weights: np.ndarray, seed: int) -> Any:
        self._calls += 1
        if self._turn.hold():  # another training call waits: stop serving, let it have the executors
            tasks, self._resident = self._resident, None
            if tasks is not None:
                tasks.stop()
            self._turn.pass_on()
            self._starts.yielded(self._calls)
        if self._resident is None and self._starts.due(self._calls):
            self._start()
        if self._resident is not None:
            try:
                acc = self._resident(weights, seed)
                self.resident_calls += 1
                return acc
            except Lost as e:
                self._drop()
                _raise_if_cancelled(e)
                log.warning("resident tasks lost (%s): this iteration runs as a Spark job", e)
        return tree_aggregate(self._rdd, self.tree, weights, seed, self._spec)

    def _start(self) -> None:
        first, self._first = self._first, None
        if first is not None:
            try:
                first.serve(self._depth, self._spec, self._d)
                self._resident = first
                return
            except Lost as e:
                _raise_if_cancelled(e)
                log.info("%s: starting resident tasks over the cached blocks", e)
        if not self._quiet.wait_quiet(lambda: bool(self._sc.statusTracker().getActiveJobsIds())):
            self._starts.busy(self._calls)
            return
        reason = off_reason(self._sc)
        free = None if reason else _spark.free_slots(self._sc)
        tasks = 0 if free is None else min(self.tree.num_partitions, free)
        reason = reason or (None if free is None else memory.too_big(self._sc, self._block_bytes, tasks))
        if reason or free is None:
            if reason and (self._sc.applicationId, reason) not in _TOLD:
                _TOLD.add((self._sc.applicationId, reason))
                log.info("resident tasks are off (%s): one Spark job per iteration", reason)
            self._starts.off()
            return
        try:
            if tasks < 1:
                raise Lost("no free task slot", busy=True)
            self._resident = Crew.start(self._sc, self._rdd, tasks, self._depth, self._spec, self._d)
        except Lost as e:
            _raise_if_cancelled(e)
            if e.busy:  # other work holds or wants the slots: try again once it is done
                log.debug("resident tasks did not start (%s): this iteration runs as a Spark job", e)
                self._starts.busy(self._calls)
            else:
                self._back_off(f"resident tasks did not start ({e})")
            return
        self._starts.started()

    def _back_off(self, why: str) -> None:
        log.info("%s: one Spark job per iteration, trying again at iteration %d", why, self._starts.failed(self._calls))

    def _drop(self) -> None:
        tasks, self._resident = self._resident, None
        if tasks is not None:
            tasks.stop()
            if tasks.handed_over:  # start again once the jobs they were handed over to are done
                self._starts.handed_over(self._calls)
            else:
                self._back_off("resident tasks ended")

    def close(self) -> None:
        log.debug("resident tasks served %d of the %d iterations", self.resident_calls, self._calls)
        first, self._first = self._first, None
        if first is not None:
            first.release(raise_error=False)
        tasks, self._resident = self._resident, None
        if tasks is not None:
            tasks.stop()
        self._turn.close()


def _raise_if_cancelled(lost: Lost) -> None:
    """The caller's cancellation (its job group cancelled) ends the training call, as it ends MLlib's."""
    if lost.cancelled is not None:
        raise lost.cancelled from None
