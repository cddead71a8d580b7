"""One iteration's sums over the stored blocks: a Spark job whose Python code is shipped once.

An RDD action from PySpark pickles a new Python function, builds a new ``PythonRDD`` through
several py4j calls and serializes both into the job, every time. The loop's function is the
same at every iteration; only the seed and the weights change. So the function is built
once, as a ``mapPartitions`` over one element per partition, and every iteration re-runs that
same ``PythonRDD``. The iteration's ``(seed, weights)`` travel as a Spark local property of
the job (``SparkContext.setLocalProperty``), which Spark hands to every task of the job, and
its retries, together with the task context. The weights are encoded exactly (raw float64
bytes in base64).

The partial sums are combined as ``RDD.treeAggregate(zero, seq, comb, depth)`` would: one
accumulator per partition, then a tree of ``reduceByKey`` levels when there are many
partitions, then a fold on the driver in partition order.

From the second iteration on, when the cluster has a free slot for every partition, the same
fold runs in :mod:`sparkgd.resident` tasks instead, which stay up for the whole training call
and skip the cost of a job per iteration; their partial sums are combined the same way on the
driver. If they are lost, the iteration in flight and the rest run one job each again.
"""

from __future__ import annotations

import base64
import functools
import logging
import math
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from pyspark import RDD, SparkContext, TaskContext

from sparkgd.resident import Lost, ResidentTasks, task_count

log = logging.getLogger("sparkgd")
UDS = "spark.python.unix.domain.socket.enabled"  # executors reach their Python workers by Unix sockets


def encode(seed: int, weights: np.ndarray) -> str:
    """The local property value for one iteration: ``"<seed> <base64 of the little-endian float64s>"``."""
    w = np.ascontiguousarray(weights, dtype="<f8")
    return f"{int(seed)} {base64.b64encode(w.data).decode('ascii')}"


def decode(value: str) -> tuple[int, np.ndarray]:
    """Inverse of :func:`encode`."""
    seed, w = value.split(" ", 1)
    return int(seed), np.frombuffer(base64.b64decode(w), dtype="<f8")


def _partition_sums(partition: int, rows: Iterable[Any], *, key: str, fold: Callable[..., Any]) -> Iterator[Any]:
    for _ in rows:  # none; consumed so that Spark can reuse the Python worker
        pass
    value = TaskContext.get().getLocalProperty(key)
    if value is None:
        raise RuntimeError(f"the job has no local property {key!r}: it must be run by IteratedAggregation")
    seed, weights = decode(value)
    yield fold(None, partition, weights=weights, seed=seed)


def placed_index(sc: SparkContext, num_partitions: int, near: RDD | None = None) -> RDD:
    """``num_partitions`` empty partitions whose tasks Spark places where ``near``'s partitions are cached.

    Built on the JVM as ``near.sample(withReplacement=True, fraction=0.0)``: Spark's Poisson
    sampler returns no rows without reading the parent partition, and the scheduler places the
    tasks of this narrow child by the parent's cache locations. Without ``near``, a plain one.
    """
    if near is not None:
        try:
            return RDD(near._jrdd.sample(True, 0.0, 0), sc, near._jrdd_deserializer)
        except Exception:  # not a JVM-backed RDD: no placement
            log.debug("no placement for the iteration tasks", exc_info=True)
    return sc.parallelize([], num_partitions)


def _levels(num_partitions: int, depth: int) -> list[int]:
    """The partition counts of ``treeAggregate``'s intermediate levels (none when few partitions)."""
    levels = []
    n: float = num_partitions
    scale = max(int(math.ceil(pow(num_partitions, 1.0 / depth))), 2)
    while n > scale + n / scale:
        n /= scale
        levels.append(int(n))
    return levels


def _keyed(i: int, it: Iterable[Any], *, n: int) -> Iterator[tuple[int, Any]]:
    for acc in it:
        yield i % n, acc


class IteratedAggregation:
    """``treeAggregate(None, fold, comb, depth)`` over ``range(num_partitions)``, once per iteration.

    Parameters
    ----------
    sc : SparkContext
        The context the jobs run in.
    num_partitions : int
        One task per partition; task ``p`` folds the partition index ``p``.
    fold : callable
        ``fold(acc, partition, *, weights, seed) -> acc``, run on the workers; ``acc`` starts at ``None``.
    comb : callable
        ``comb(a, b) -> acc``, associative.
    depth : int
        As ``treeAggregate``'s ``depth``.
    key : str
        The local property name (unique per loop).
    near : RDD, optional
        A cached RDD with ``num_partitions`` partitions, e.g. the receipts of the blocks the
        partitions fold: task ``p`` then runs where ``near``'s partition ``p`` is cached
        (:func:`placed_index`).
    """

    def __init__(self, sc: SparkContext, num_partitions: int, fold: Callable[..., Any],
                 comb: Callable[[Any, Any], Any], depth: int, key: str,
                 near: RDD | None = None) -> None:
        self._sc = sc
        if self._sc.getConf().get(UDS, "false").lower() != "true":
            log.info("%s=true at session start cuts about 40 ms from every iteration (README: Settings for speed)",
                     UDS)
        self._key = key
        self._comb = comb
        self._index = placed_index(self._sc, num_partitions, near)
        self._partials = self._index.mapPartitionsWithIndex(functools.partial(_partition_sums, key=key, fold=fold))
        self._levels = _levels(num_partitions, depth)
        self._jvm_partials = None
        self._fold = fold
        self._resident_wanted = True  # until resident tasks were released
        self._resident: ResidentTasks | None = None
        self._calls = 0
        self.resident_calls = 0  # iterations the resident tasks served

    def __call__(self, weights: np.ndarray, seed: int) -> Any:
        """The combined accumulator of all partitions for these weights and seed."""
        self._calls += 1
        if self._calls == 2 and self._resident_wanted:
            num = self._index.getNumPartitions()
            tasks = task_count(self._sc, num)
            try:
                if tasks:
                    self._resident = ResidentTasks(self._sc, self._index, tasks, self._fold)
            except Lost as e:
                log.info("resident tasks did not start (%s): one job per iteration", e)
        if self._resident is not None:
            try:
                parts = self._resident(weights, seed)
                self.resident_calls += 1
                return functools.reduce(self._comb, self._tree(parts), None)
            except Lost as e:
                log.warning("resident tasks lost (%s): this and later iterations run one job each", e)
                self.release(cancel=True)
        self._sc.setLocalProperty(self._key, encode(seed, weights))
        self._sc._jsc.setCallSite(f"sparkgd iteration (seed {seed})")  # the job's name in the Spark UI
        try:
            parts = self._collect_partials()
        finally:
            self._sc.setLocalProperty(self._key, None)  # type: ignore[arg-type]
            self._sc._jsc.setCallSite(None)
        return functools.reduce(self._comb, parts, None)

    def _collect_partials(self) -> list[Any]:
        if not self._levels:
            if self._jvm_partials is None:
                self._jvm_partials = self._partials._jrdd.rdd()
            return _collect(self._partials, self._jvm_partials)
        rdd = self._partials
        for n in self._levels:
            rdd = rdd.mapPartitionsWithIndex(functools.partial(_keyed, n=n)).reduceByKey(self._comb, n).values()
        return rdd.collect()

    def _tree(self, parts: list[Any]) -> list[Any]:
        """``parts`` combined through the levels :meth:`_collect_partials` shuffles through."""
        for n in self._levels:
            parts = [functools.reduce(self._comb, parts[k::n], None) for k in range(n)]
        return parts

    def release(self, cancel: bool = False) -> None:
        """Stop the resident tasks if they run (freeing their cores); later calls then run one job each."""
        if self._resident is not None:
            self._resident_wanted = False
            self._resident, tasks = None, self._resident
            tasks.stop(cancel=cancel)

    def close(self) -> None:
        self.release()


def _collect(rdd: RDD, jvm_rdd: Any) -> list[Any]:
    """``rdd.collect()`` re-running the RDD's existing ``PythonRDD`` (``jvm_rdd``) with one py4j call."""
    from pyspark.util import _load_from_socket

    sock_info = rdd.context._jvm.PythonRDD.collectAndServe(jvm_rdd)
    with _load_from_socket(sock_info, rdd._jrdd_deserializer) as stream:
        return list(stream)
