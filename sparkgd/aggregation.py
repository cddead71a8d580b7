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
"""

from __future__ import annotations

import base64
import functools
import logging
import math
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from pyspark import RDD, SparkContext, TaskContext

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


def _partition_sums(index: Iterable[int], *, key: str, fold: Callable[..., Any]) -> Iterator[Any]:
    value = TaskContext.get().getLocalProperty(key)
    if value is None:
        raise RuntimeError(f"the job has no local property {key!r}: it must be run by IteratedAggregation")
    seed, weights = decode(value)
    acc = None
    for partition in index:
        acc = fold(acc, partition, weights=weights, seed=seed)
    yield acc


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
    """

    def __init__(self, sc: SparkContext, num_partitions: int, fold: Callable[..., Any],
                 comb: Callable[[Any, Any], Any], depth: int, key: str) -> None:
        self._sc = sc
        if self._sc.getConf().get(UDS, "false").lower() != "true":
            log.info("%s=true at session start cuts about 40 ms from every iteration (README: Settings for speed)",
                     UDS)
        self._key = key
        self._comb = comb
        self._index = self._sc.parallelize(range(num_partitions), num_partitions).cache()
        self._partials = self._index.mapPartitions(functools.partial(_partition_sums, key=key, fold=fold))
        self._levels = _levels(num_partitions, depth)
        self._jvm_partials = None

    def __call__(self, weights: np.ndarray, seed: int) -> Any:
        """The combined accumulator of all partitions for these weights and seed."""
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

    def close(self) -> None:
        self._index.unpersist()


def _collect(rdd: RDD, jvm_rdd: Any) -> list[Any]:
    """``rdd.collect()`` re-running the RDD's existing ``PythonRDD`` (``jvm_rdd``) with one py4j call."""
    from pyspark.util import _load_from_socket

    sock_info = rdd.context._jvm.PythonRDD.collectAndServe(jvm_rdd)
    with _load_from_socket(sock_info, rdd._jrdd_deserializer) as stream:
        return list(stream)
