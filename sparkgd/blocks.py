"""Training data as cached blocks: one block of rows per RDD partition.

Rows arrive once as ``(label, features)``, ``(label, features, weight)`` or ``LabeledPoint``
(features: numpy arrays, sequences, or ``pyspark.mllib``/``pyspark.ml`` dense or sparse
vectors) and become a :class:`Block`: a float64 label vector and a dense matrix, or a CSR
matrix when any row of the partition is sparse. Each block keeps its partition index and
the rows in their original order, which is what lets :mod:`sparkgd.sampling` pick exactly
the rows the JVM would. Problems in a row are recorded in the block, not raised on the
worker, so the driver can report them with the partition and row.
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import scipy.sparse as sp
from pyspark import RDD, StorageLevel
from pyspark.accumulators import AccumulatorParam
from pyspark.ml.linalg import DenseVector as MLDenseVector
from pyspark.mllib.linalg import DenseVector as MLlibDenseVector
from pyspark.mllib.regression import LabeledPoint

_MAX_BAD_LABELS = 10
_ROLES = ("label", "features", "weight")
_DENSE_VECTORS = (MLlibDenseVector, MLDenseVector)


@dataclass
class Block:
    """The rows of one partition."""

    partition: int
    labels: np.ndarray
    features: np.ndarray | sp.csr_matrix
    weights: np.ndarray | None = None
    error: str | None = None

    @property
    def num_rows(self) -> int:
        return len(self.labels)

    @property
    def num_features(self) -> int | None:
        return self.features.shape[1] if self.num_rows else None


@dataclass
class BlockSummary:
    """What the driver needs to know about a block, collected once."""

    partition: int
    num_rows: int
    num_features: int | None
    error: str | None
    bad_label_count: int = 0
    bad_labels: list[float] = field(default_factory=list)
    negative_weight_count: int = 0
    moments: tuple[float, float, np.ndarray, np.ndarray] | None = None


def _vector_parts(v: Any) -> tuple[int, np.ndarray | None, np.ndarray | None]:
    """``(size, dense values, None)`` or ``(size, indices, values)`` for a sparse vector."""
    if type(v) in _DENSE_VECTORS:  # the common case first: no attribute probing
        return len(v.array), v.array, None
    if hasattr(v, "indices") and hasattr(v, "values") and hasattr(v, "size"):
        return int(v.size), np.asarray(v.indices, dtype=np.int64), np.asarray(v.values, dtype=np.float64)
    if sp.issparse(v):
        csr = sp.csr_matrix(v)
        return csr.shape[1], csr.indices.astype(np.int64), csr.data.astype(np.float64)
    if hasattr(v, "toArray"):
        v = v.toArray()
    arr = np.asarray(v, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"features must be a 1-D vector, got shape {arr.shape}")
    return arr.shape[0], arr, None


def _split_row(row: Any) -> tuple[Any, Any, Any]:
    if type(row) is LabeledPoint:  # the common case first: no attribute probing
        return row.label, row.features, None
    if hasattr(row, "label") and hasattr(row, "features") and not isinstance(row, tuple):
        return row.label, row.features, None
    if isinstance(row, (tuple, list)) and len(row) in (2, 3):
        return row[0], row[1], row[2] if len(row) == 3 else None
    raise ValueError(
        "a row must be a LabeledPoint, (label, features) or (label, features, weight); "
        f"got {type(row).__name__}"
    )


def build_block(partition: int, rows: Iterable[Any], columns: tuple[str, str, str] = _ROLES) -> Block:
    """Convert a partition's rows into a :class:`Block`, recording the first bad row.

    ``columns`` names the label, features and weight in messages (DataFrame column names).
    """
    labels: list[float] = []
    weights: list[float] = []
    dense: list[np.ndarray] = []
    sparse_rows: list[tuple[np.ndarray, np.ndarray] | np.ndarray] = []
    any_sparse = False
    size = None
    has_weights = None
    for j, row in enumerate(rows):
        try:
            label, feats, weight = _split_row(row)
            if label is None or feats is None:
                raise ValueError(f"{columns[0] if label is None else columns[1]} is null")
            if weight is None and isinstance(row, tuple) and len(row) == 3:
                raise ValueError(f"{columns[2]} is null")
            n, a, b = _vector_parts(feats)
            if type(label) is not float and not isinstance(label, numbers.Real):
                raise ValueError(f"{columns[0]} must be a number, got {label!r}")
        except (ValueError, TypeError) as e:
            return bad_block(partition, f"partition {partition}, row {j}: {e}")
        if size is None:
            size = n
        elif n != size:
            return bad_block(partition, f"partition {partition}, row {j}: has {n} features, "
                                   f"earlier rows of the partition have {size}")
        if has_weights is None:
            has_weights = weight is not None
        elif has_weights != (weight is not None):
            return bad_block(partition, f"partition {partition}, row {j}: some rows have a weight and some do not")
        labels.append(float(label))
        if weight is not None:
            weights.append(float(weight))
        if b is not None:
            any_sparse = True
            sparse_rows.append((a, b))
        else:
            sparse_rows.append(a)
            dense.append(a)
    y = np.asarray(labels, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64) if has_weights else None
    if size is None:
        return Block(partition, y, np.empty((0, 0)), w)
    if any_sparse:
        x = _to_csr(sparse_rows, size)
        values = x.data
    else:
        x = np.stack(dense) if dense else np.empty((0, size))
        values = x
    block = Block(partition, y, x, w)
    check_finite(block, values, columns)
    return block


def bad_block(partition: int, message: str) -> Block:
    """An empty block that carries the error the driver will raise."""
    return Block(partition, np.empty(0), np.empty((0, 0)), None, message)


def check_finite(block: Block, values: np.ndarray, columns: tuple[str, str, str] = _ROLES) -> None:
    """Record the first row with a NaN or infinite label, feature (``values``) or weight in ``block.error``."""
    bad = _first_nonfinite_row(block, values)
    if bad is not None:
        block.error = f"partition {block.partition}, row {bad[0]}: NaN or infinite value in {columns[bad[1]]}"


def _to_csr(rows: list, size: int) -> sp.csr_matrix:
    indptr = [0]
    indices, data = [], []
    for r in rows:
        if isinstance(r, tuple):
            idx, val = r
        else:
            idx = np.flatnonzero(r)
            val = r[idx]
        indices.append(idx)
        data.append(val)
        indptr.append(indptr[-1] + len(idx))
    return sp.csr_matrix(
        (np.concatenate(data) if data else np.empty(0), np.concatenate(indices) if indices else np.empty(0, int),
         np.asarray(indptr)), shape=(len(rows), size))


def _first_nonfinite_row(block: Block, values: np.ndarray) -> tuple[int, int] | None:
    """``(row, role)`` of the first non-finite value; role 0 label, 1 features, 2 weight."""
    n = block.num_rows
    first = [n, n, n]
    for role, bad in ((0, ~np.isfinite(block.labels)),
                      (2, None if block.weights is None else ~np.isfinite(block.weights))):
        if bad is not None and bad.any():
            first[role] = int(np.argmax(bad))
    if isinstance(block.features, np.ndarray):
        bad = ~np.isfinite(block.features).all(axis=1)
        if bad.any():
            first[1] = int(np.argmax(bad))
    elif not np.isfinite(values).all():
        rows = np.repeat(np.arange(n), np.diff(block.features.indptr))
        first[1] = int(rows[~np.isfinite(values)].min())
    row = min(first)
    return None if row == n else (row, first.index(row))


def summarize(block: Block, moments: bool = False) -> BlockSummary:
    """Row count, width and label facts of a block, for the driver's checks; with ``moments``
    also the sums :func:`feature_std` needs."""
    y = block.labels
    odd = y[(y != 0.0) & (y != 1.0)]
    neg = 0 if block.weights is None else int((block.weights < 0).sum())
    return BlockSummary(block.partition, block.num_rows, block.num_features, block.error,
                        len(odd), sorted(set(odd.tolist()))[:_MAX_BAD_LABELS], neg,
                        _moments(block) if moments else None)


def _moments(block: Block) -> tuple[float, float, np.ndarray, np.ndarray] | None:
    """``(sum v, sum v^2, sum v x, sum v x^2)`` with row weights ``v`` (1 when absent)."""
    if block.num_rows == 0 or block.error:
        return None
    v = np.ones(block.num_rows) if block.weights is None else block.weights
    x = block.features
    xx = x.multiply(x) if sp.issparse(x) else x * x
    return float(v.sum()), float((v * v).sum()), np.asarray(x.T @ v).ravel(), np.asarray(xx.T @ v).ravel()


class BlockedData:
    """Blocks (one per partition) kept on the executors, and what is known about them.

    Each block is built once, on an executor, and written to that host's local store
    (:mod:`sparkgd.store`), where iterations memory-map it. The cached RDD :attr:`rdd` holds
    only a receipt per partition (its index): its cache locations tell Spark where each block
    is, and if a receipt is lost with its executor, Spark rebuilds it, and the block, from the
    input. A task that does not find its block computes it from :attr:`source`, which builds
    the block again from the input (and stores it on that host). The data is held once.

    Parameters
    ----------
    data : RDD
        Rows as described in the module docstring (or what ``build`` reads).
    moments : bool
        Also collect the per-feature sums :func:`feature_std` needs (standardization).
    storage_level : StorageLevel
        How the receipts are persisted.
    build : callable, optional
        ``build(partition, items, columns) -> Block``; :func:`build_block` by default,
        :func:`sparkgd.arrow.build_block_from_batches` for a DataFrame's Arrow batches.
    """

    def __init__(self, data: RDD, storage_level: StorageLevel = StorageLevel.MEMORY_ONLY,
                 columns: tuple[str, str, str] = _ROLES, moments: bool = False,
                 build: Callable[[int, Iterable[Any], tuple[str, str, str]], Block] | None = None) -> None:
        from sparkgd import store

        self.columns = columns
        self.store_id = store.new_store_id()
        found = data.context.accumulator([], _Collect())
        blocks_of = functools.partial(_blocks_of, columns=columns, store_id=self.store_id, build=build or build_block)
        self.rdd: RDD = _detached(data.mapPartitionsWithIndex(functools.partial(
            blocks_of, summaries=found, moments=moments, receipt=True)).persist(storage_level))
        self.source: RDD = _detached(data.mapPartitionsWithIndex(blocks_of))
        self.num_partitions = self.rdd.getNumPartitions()
        # A JVM-side count builds and stores the blocks; the summaries come back as an
        # accumulator, so the blocks never cross to the JVM or back.
        self.rdd._jrdd.count()
        by_partition = {s.partition: s for s in found.value}
        if len(by_partition) != self.num_partitions:  # not expected: then summarize the blocks again
            again = self.source.map(functools.partial(summarize, moments=moments)).collect()
            by_partition = {s.partition: s for s in again}
        self.summaries: list[BlockSummary] = [by_partition[p] for p in sorted(by_partition)]

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
                raise ValueError(f"bad input data: {s.error}")
            if s.num_features is None:
                continue
            if width is None:
                width = (s.num_features, s.partition)
            elif s.num_features != width[0]:
                raise ValueError(
                    f"bad input data: partition {s.partition}, row 0: has {s.num_features} features, "
                    f"rows of partition {width[1]} have {width[0]}")

    def check_binary_labels(self) -> None:
        """Raise ``ValueError`` with how many labels are outside {0, 1} and which."""
        count = sum(s.bad_label_count for s in self.summaries)
        if count:
            values = sorted({v for s in self.summaries for v in s.bad_labels})[:_MAX_BAD_LABELS]
            where = "" if self.columns[0] == "label" else f" in {self.columns[0]}"
            raise ValueError(f"classification labels must be 0 or 1: found {count} invalid labels{where}, "
                             f"values {values}")

    def check_weights(self) -> None:
        """Raise ``ValueError`` when any row weight is negative."""
        count = sum(s.negative_weight_count for s in self.summaries)
        if count:
            raise ValueError(f"{self.columns[2]} has {count} negative weights; weights must be >= 0")

    def unpersist(self) -> None:
        from sparkgd import store

        self.rdd.unpersist()
        store.drop(self.store_id)


def _detached(rdd: RDD) -> RDD:
    """``rdd`` with its JVM RDD built and no reference left to its input's Python object.

    pyspark needs ``prev`` only to build the JVM RDD; without this, kept blocks would keep their
    input alive (:mod:`sparkgd.reuse` releases blocks when their input is collected).
    """
    rdd._jrdd.id()
    rdd.prev = None
    return rdd


class _Collect(AccumulatorParam):
    """An accumulator that gathers lists."""

    def zero(self, value: list) -> list:
        return []

    def addInPlace(self, a: list, b: list) -> list:
        a.extend(b)
        return a


def _blocks_of(partition: int, rows: Iterator[Any], columns: tuple[str, str, str] = _ROLES,
               store_id: str | None = None, build: Callable[..., Block] = build_block,
               summaries: Any = None, moments: bool = False, receipt: bool = False) -> Iterator[Block | int]:
    """Build the partition's block, report its summary, store it; yield it, or only its index (``receipt``)."""
    block = build(partition, rows, columns)
    if summaries is not None:
        summaries.add([summarize(block, moments)])
    if store_id is not None:
        from sparkgd import store

        store.put(store_id, block)
    yield partition if receipt else block


def feature_std(blocks: BlockedData) -> np.ndarray:
    r"""Weighted sample standard deviation of each feature, as Spark's ``Summarizer`` defines it:

    .. math:: \sigma_j^2 = \frac{\sum_i v_i (x_{ij} - \bar x_j)^2}{\sum_i v_i - \sum_i v_i^2 / \sum_i v_i}
    """
    d = blocks.num_features or 0
    parts = [s.moments for s in blocks.summaries if s.moments is not None]
    if not parts and any(s.num_rows for s in blocks.summaries):
        raise ValueError("feature_std needs BlockedData(..., moments=True)")
    if not parts:
        return np.zeros(d)
    sw, sw2, sx, sxx = (sum(p[k] for p in parts) for k in range(4))
    if sw <= 0:
        return np.zeros(d)
    mean = sx / sw
    denom = sw - sw2 / sw
    var = (sxx - sw * mean * mean) / denom if denom > 0 else np.zeros(d)
    return np.sqrt(np.maximum(var, 0.0))
