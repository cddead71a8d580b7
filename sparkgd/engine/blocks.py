"""Training data as a cached RDD of blocks, one :class:`~sparkgd.core.block.Block` per partition.

The blocks live where Spark keeps cached data, in its block manager, and nowhere else: Spark
owns their memory, spills, encryption (``spark.io.encryption.enabled``), replication and
cleanup, and rebuilds a lost block from the input by its lineage. They are built by one job
that the JVM counts, so they never travel back to Python; each block's summary (rows, width,
the first bad row, label facts) returns to the driver through an accumulator.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from pyspark import RDD, StorageLevel
from pyspark.accumulators import AccumulatorParam

from sparkgd.core.block import _MAX_BAD_LABELS, _ROLES, Block, BlockSummary, FoldSpec, build_block, summarize
from sparkgd.core.errors import InputDataError
from sparkgd.core.pickled import build_block_from_pickles
from sparkgd.engine import _spark, resident, turns


class _Collect(AccumulatorParam):
    """An accumulator that gathers lists."""

    def zero(self, value: list) -> list:
        return []

    def addInPlace(self, a: list, b: list) -> list:
        a.extend(b)
        return a


@contextlib.contextmanager
def _without_gc() -> Iterator[None]:
    """Python's cyclic collector off: a build makes a few objects per row and no cycle, and the collections
    that hundreds of thousands of live objects trigger cost more than the build itself (2-3x)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _blocks_of(partition: int, rows: Iterator[Any], *, columns: tuple[str, str, str],
               build: Callable[..., Block], summaries: Any, builds: Any, moments: bool,
               serve: resident.ServeFirst | None = None) -> Iterator[Block]:
    """Build the partition's block and report its summary (and serve iterations first: :meth:`Crew.builders`)."""
    with _without_gc():
        block = build(partition, rows, columns)
    summary = summarize(block, moments)
    summaries.add([summary])
    builds.add(1)
    if serve is not None:
        serve.serve(block, summary)
    yield block


class BlockFacts:
    """What the driver knows of the blocks: one :class:`BlockSummary` per partition, and the checks on them.

    ``columns`` names the label, features and weight in messages.
    """

    def __init__(self, summaries: list[BlockSummary], columns: tuple[str, str, str] = _ROLES) -> None:
        self.summaries, self.columns = summaries, columns

    @property
    def count(self) -> int:
        return sum(s.num_rows for s in self.summaries)

    @property
    def num_features(self) -> int | None:
        """The common width of all rows; raises ``ValueError`` on any bad row."""
        self.check()
        widths = [s.num_features for s in self.summaries if s.num_features is not None]
        return widths[0] if widths else None

    def check(self) -> None:
        """Raise ``ValueError`` naming the first bad partition and row, if any."""
        width = None
        for s in self.summaries:
            if s.error:
                raise InputDataError(f"bad input data: {s.error}")
            if s.num_features is None:
                continue
            if width is None:
                width = (s.num_features, s.partition)
            elif s.num_features != width[0]:
                raise InputDataError(
                    f"bad input data: partition {s.partition}, row 0: has {s.num_features} features, "
                    f"rows of partition {width[1]} have {width[0]}")

    def check_binary_labels(self) -> None:
        """Raise ``ValueError`` with how many labels are outside {0, 1} and which."""
        count = sum(s.bad_label_count for s in self.summaries)
        if count:
            values = sorted({v for s in self.summaries for v in s.bad_labels})[:_MAX_BAD_LABELS]
            where = "" if self.columns[0] == "label" else f" in {self.columns[0]}"
            raise InputDataError(f"classification labels must be 0 or 1: found {count} invalid labels{where}, "
                             f"values {values}")

    def check_class_labels(self, num_classes: int | None = None) -> int:
        """The number of classes, ``num_classes`` or the largest label + 1; raises ``InputDataError`` when
        a label is not a class index ``0 .. num_classes - 1`` (negative, not an integer, or too large)."""
        where = "" if self.columns[0] == "label" else f" in {self.columns[0]}"
        count = sum(s.class_label_count for s in self.summaries)
        if count:
            values = sorted({v for s in self.summaries for v in s.class_labels})[:_MAX_BAD_LABELS]
            raise InputDataError(f"class labels must be integers 0, 1, 2, ...: found {count} invalid labels{where}, "
                                 f"values {values}")
        top = int(max((s.max_label for s in self.summaries), default=-1.0))
        if num_classes is not None and top >= num_classes:
            raise InputDataError(f"found class label {top}{where}, but numClasses is {num_classes} "
                                 f"(labels must be 0 .. {num_classes - 1})")
        return num_classes if num_classes is not None else top + 1

    def check_weights(self) -> None:
        """Raise ``InputDataError`` when a row weight is negative, or when every weight is 0 (nothing to fit)."""
        count = sum(s.negative_weight_count for s in self.summaries)
        if count:
            raise InputDataError(f"{self.columns[2]} has {count} negative weights; weights must be >= 0")
        if self.count and sum(s.weight_sum for s in self.summaries) <= 0:
            raise InputDataError(f"{self.columns[2]} is 0 for all {self.count} rows; at least one weight must be > 0")


class BlockedData(BlockFacts):
    """Blocks (one per partition) cached by Spark, and what is known about them (:func:`build_blocks`).

    ``cached_by`` is the job of block builders that served (:meth:`~sparkgd.engine.resident.Crew.builders`):
    its tasks hand their blocks to Spark when they stop, so :meth:`unpersist` waits for it.
    """

    def __init__(self, rdd: RDD, summaries: list[BlockSummary], columns: tuple[str, str, str] = _ROLES,
                 builds: Any = None, cached_by: Any = None) -> None:
        super().__init__(summaries, columns)
        self.rdd, self.num_partitions = rdd, rdd.getNumPartitions()
        self.builds = builds  # an accumulator of block builds, rebuilds included (tests count them)
        self._cached_by = cached_by

    def iteration_sums(self, depth: int, spec: FoldSpec, num_weights: int) -> Any:
        """Each iteration's sums over these blocks (:class:`~sparkgd.engine.aggregation.IterationSums`), served
        by the builders the current training call holds for them, if any (:func:`sparkgd.engine.turns.hold`)."""
        from sparkgd.engine.aggregation import IterationSums

        return IterationSums(self.rdd, depth, spec, num_weights, first=turns.take(self.rdd.id()),
                             block_bytes=[s.nbytes for s in sorted(self.summaries, key=lambda s: s.partition)])

    def hadoop_dirs(self) -> Any:
        """Checkpoint directories on Spark's Hadoop filesystems."""
        from sparkgd.engine import fs

        return fs.HadoopDirs(self.rdd.context)

    def unpersist(self, blocking: bool = False) -> None:
        """Drop the blocks from every executor's block manager (once the tasks that built them have ended)."""
        if self._cached_by is not None:
            self._cached_by.thread.join()
        self.rdd.unpersist(blocking)


def build_blocks(data: RDD, storage_level: StorageLevel | None = None, columns: tuple[str, str, str] = _ROLES,
                 moments: bool = False,
                 build: Callable[[int, Iterable[Any], tuple[str, str, str]], Block] | None = None,
                 builders: resident.Crew | None = None) -> BlockedData:
    """Build and cache one block per partition of ``data`` with one job, which the JVM counts.

    Parameters
    ----------
    data : RDD
        Rows as :func:`~sparkgd.core.block.build_block` reads them (or what ``build`` reads).
    storage_level : StorageLevel
        How Spark keeps the blocks; the input's own level when it is cached (MEMORY_AND_DISK
        otherwise, so an evicted block is spilled rather than rebuilt from the input).
    columns : tuple of str
        The label, features and weight as named in error messages.
    moments : bool
        Also collect the per-feature sums :func:`feature_std` needs (standardization).
    build : callable, optional
        ``build(partition, items, columns) -> Block``; :func:`~sparkgd.core.block.build_block`
        by default, :func:`sparkgd.engine.arrow.build_block_from_batches` for Arrow batches.
    builders : Crew, optional
        Tasks to build the blocks and stay up (:meth:`~sparkgd.engine.resident.Crew.builders`); the
        caller owns them: on return they wait for a plan (``builders.state``) or have ended.
    """
    sc = data.context
    found = sc.accumulator([], _Collect())
    builds = sc.accumulator(0)
    if storage_level is None:
        storage_level = data.getStorageLevel() if data.is_cached else StorageLevel.MEMORY_AND_DISK
    source = None if build is not None else _spark.pickled_batches(data)  # LabeledPoints without objects
    if source is not None:
        build = build_block_from_pickles
    rdd: RDD = (source or data).mapPartitionsWithIndex(functools.partial(
        _blocks_of, columns=columns, build=build or build_block, summaries=found, builds=builds,
        moments=moments, serve=builders and builders.serve_first)).persist(storage_level)
    rdd.setName(f"sparkgd blocks of RDD {data.id()}")
    _spark.detach(rdd)  # kept blocks must not keep their input's Python object alive
    if builders is None:
        _spark.jvm_count(rdd)
    else:
        told = builders.build(rdd)  # None: they did not all wait, and the job ran as a plain build
        if told is not None:
            return BlockedData(rdd, told, columns, builds, cached_by=builders.job)
    by_partition = {s.partition: s for s in found.value}
    if len(by_partition) != rdd.getNumPartitions():  # not expected: then summarize the blocks again
        again = rdd.map(functools.partial(summarize, moments=moments)).collect()
        by_partition = {s.partition: s for s in again}
    return BlockedData(rdd, [by_partition[p] for p in sorted(by_partition)], columns, builds)


def build_for_call(data: RDD, **kwargs: Any) -> BlockedData:
    """:func:`build_blocks` by builders that the current training call holds (:func:`sparkgd.engine.turns.hold`)
    until its first :meth:`~BlockedData.iteration_sums` takes them; a plain build outside a training call."""
    builders = resident.Crew.builders(data.context, data.getNumPartitions()) if turns.current() else None
    blocks = build_blocks(data, builders=builders, **kwargs)
    if builders is not None and builders.state is resident.State.WAITING:
        turns.hold(blocks.rdd.id(), builders)
    return blocks


def feature_mean_std(blocks: BlockFacts) -> tuple[np.ndarray, np.ndarray]:
    r"""Weighted mean and sample standard deviation of each feature, as Spark's ``Summarizer`` defines them:

    .. math:: \bar x_j = \frac{\sum_i v_i x_{ij}}{\sum_i v_i}, \qquad
              \sigma_j^2 = \frac{\sum_i v_i (x_{ij} - \bar x_j)^2}{\sum_i v_i - \sum_i v_i^2 / \sum_i v_i}
    """
    d = blocks.num_features or 0
    parts = [s.moments for s in blocks.summaries if s.moments is not None]
    if not parts and any(s.num_rows for s in blocks.summaries):
        raise ValueError("feature_mean_std needs BlockedData(..., moments=True)")
    if not parts:
        return np.zeros(d), np.zeros(d)
    sw, sw2, sx, sxx = (sum(p[k] for p in parts) for k in range(4))
    if sw <= 0:
        return np.zeros(d), np.zeros(d)
    mean = sx / sw
    denom = sw - sw2 / sw
    var = (sxx - sw * mean * mean) / denom if denom > 0 else np.zeros(d)
    return mean, np.sqrt(np.maximum(var, 0.0))


def feature_std(blocks: BlockFacts) -> np.ndarray:
    """The standard deviations of :func:`feature_mean_std`."""
    return feature_mean_std(blocks)[1]
