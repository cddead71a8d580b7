"""A block: the rows of one partition as arrays, and the arithmetic on it (no Spark needed).

Rows arrive once as ``(label, features)``, ``(label, features, weight)`` or ``LabeledPoint``
(features: numpy arrays, sequences, or ``pyspark.mllib``/``pyspark.ml`` dense or sparse
vectors) and become a :class:`Block`: a float64 label vector and a dense matrix, or a CSR
matrix when any row of the partition is sparse. Each block keeps its partition index and
the rows in their original order, which is what lets :mod:`sparkgd.core.sampling` pick exactly
the rows the JVM would. Problems in a row are recorded in the block, not raised on the
worker, so the driver can report them with the partition and row.

:func:`block_sums` folds a block into its :class:`~sparkgd.core.sums.Sums` (gradient sum, loss
sum, rows, weight sum, held-out sums) as a :class:`FoldSpec` says.
"""

from __future__ import annotations

import functools
import json
import numbers
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

import numpy as np
import scipy.sparse as sp

from sparkgd.core.gradients import Gradient
from sparkgd.core.sampling import partition_seed, sample_positions
from sparkgd.core.sums import Sums

_MAX_BAD_LABELS = 10
_ROLES = ("label", "features", "weight")
_DENSE: dict[type, bool] = {}  # whether a class is a dense vector (pyspark's: an ``array`` and no ``indices``)
_LABELED: dict[type, bool] = {}  # whether a class is a labeled point (``label`` and ``features``, not a tuple)


def _is_dense(v: Any) -> bool:
    kind = _DENSE.get(type(v))
    if kind is None:  # first of its class: decided once by its attributes (core knows no Spark class)
        kind = _DENSE[type(v)] = isinstance(getattr(v, "array", None), np.ndarray) and not hasattr(v, "indices")
    return kind


def _is_labeled(row: Any) -> bool:
    kind = _LABELED.get(type(row))
    if kind is None:
        kind = _LABELED[type(row)] = (hasattr(row, "label") and hasattr(row, "features")
                                      and not isinstance(row, tuple))
    return kind


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
    weight_sum: float = 0.0  # sum of the row weights (the row count when there are none)
    moments: tuple[float, float, np.ndarray, np.ndarray] | None = None
    max_label: float = -1.0  # the largest label (-1 when there are no rows)
    class_label_count: int = 0  # labels that are not class indices (negative or not an integer)
    class_labels: list[float] = field(default_factory=list)
    nbytes: int = 0  # the block's arrays in memory (features, labels, weights)


def summary_to_json(s: BlockSummary) -> str:
    """``s`` as JSON text (floats written exactly, arrays as lists): how it crosses a channel that never unpickles."""
    d = dict(s.__dict__)
    if s.moments is not None:
        d["moments"] = [s.moments[0], s.moments[1], s.moments[2].tolist(), s.moments[3].tolist()]
    return json.dumps(d)


def summary_from_json(text: str | bytes | bytearray) -> BlockSummary:
    """Inverse of :func:`summary_to_json`."""
    d = json.loads(text)
    if d["moments"] is not None:
        m = d["moments"]
        d["moments"] = (m[0], m[1], np.asarray(m[2], dtype=np.float64), np.asarray(m[3], dtype=np.float64))
    return BlockSummary(**d)


def _vector_parts(v: Any) -> tuple[int, np.ndarray | None, np.ndarray | None]:
    """``(size, dense values, None)`` or ``(size, indices, values)`` for a sparse vector."""
    if _is_dense(v):  # the common case first: no attribute probing
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
    if _is_labeled(row):  # a LabeledPoint
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
        bad = index_error(partition, x.indices, x.indptr, size, columns)
        if bad is not None:
            return bad_block(partition, bad)
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


def index_error(partition: int, indices: np.ndarray, indptr: np.ndarray, size: int,
                columns: tuple[str, str, str] = _ROLES) -> str | None:
    """The message for the first sparse index outside ``[0, size)`` of CSR rows ``(indices, indptr)``, or ``None``.

    Checked before any arithmetic: scipy trusts its indices, so one out of range would read and
    write outside the arrays (a crashed worker, or a silently wrong model).
    """
    bad = (indices < 0) | (indices >= size)
    if not bad.any():
        return None
    at = int(np.argmax(bad))
    row = int(np.searchsorted(indptr, at, side="right")) - 1
    return (f"partition {partition}, row {row}: {columns[1]} has index {int(indices[at])}, outside the vector's "
            f"size {size} (valid indices: 0 to {size - 1})")


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
    total = float(block.num_rows) if block.weights is None else float(block.weights.sum())
    not_class = y[(y < 0) | (y != np.floor(y))]
    return BlockSummary(block.partition, block.num_rows, block.num_features, block.error,
                        len(odd), _smallest(odd), neg, total,
                        _moments(block) if moments else None, float(y.max()) if len(y) else -1.0,
                        len(not_class), _smallest(not_class), block_bytes(block))


def _smallest(values: np.ndarray) -> list[float]:
    """The ``_MAX_BAD_LABELS`` smallest distinct ``values``, in order (a sort: every label of a regression
    is one, so no Python set of them)."""
    return np.unique(values)[:_MAX_BAD_LABELS].tolist()


def block_bytes(block: Block) -> int:
    """The bytes of a block's arrays: what a task holding it keeps in its Python worker."""
    x = block.features
    size = x.data.nbytes + x.indices.nbytes + x.indptr.nbytes if sp.issparse(x) else np.asarray(x).nbytes
    return int(size + block.labels.nbytes + (0 if block.weights is None else block.weights.nbytes))


_MOMENT_ROWS = 4096


def _moments(block: Block) -> tuple[float, float, np.ndarray, np.ndarray] | None:
    """``(sum v, sum v^2, sum v x, sum v x^2)`` with row weights ``v`` (1 when absent)."""
    if block.num_rows == 0 or block.error:
        return None
    v = np.ones(block.num_rows) if block.weights is None else block.weights
    x = block.features
    if sp.issparse(x):
        sx, sxx = np.asarray(x.T @ v).ravel(), np.asarray(x.multiply(x).T @ v).ravel()
    else:  # by chunks of rows: no n x d temporary (its page faults cost more than the arithmetic)
        sx, sxx = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        for i in range(0, block.num_rows, _MOMENT_ROWS):
            xc, vc = x[i:i + _MOMENT_ROWS], v[i:i + _MOMENT_ROWS]
            sx += vc @ xc
            sxx += vc @ (xc * xc)
    return float(v.sum()), float((v * v).sum()), sx, sxx


def block_sums(block: Block, weights: np.ndarray, gradient: Gradient, fraction: float, seed: int,
               fit_intercept: bool = False, scale: np.ndarray | None = None,
               validation: tuple[float, int] | None = None) -> Sums | None:
    """Gradient sum, loss sum, rows and weight sum over the sampled rows of a block.

    ``fit_intercept`` treats ``weights[-1]`` as the weight of a constant 1.0 feature appended
    to every row; ``scale`` multiplies feature ``j`` by ``scale[j]`` (standardization) without
    copying the data. Returns ``None`` when no row is sampled.

    With ``validation = (fraction, seed)`` the rows :func:`held_out` picks are never sampled; the
    loss and weight sums over them are the held-out fields.
    """
    if validation is None:
        return _fold(block, sample_positions(block.num_rows, fraction, partition_seed(seed, block.partition)),
                     weights, gradient, fit_intercept, scale)
    held = held_out(block.partition, block.num_rows, *validation)
    pos = np.arange(block.num_rows)[sample_positions(block.num_rows, fraction, partition_seed(seed, block.partition))]
    train = _fold(block, pos[~held[pos]], weights, gradient, fit_intercept, scale)
    val = _fold(block, np.flatnonzero(held), weights, gradient, fit_intercept, scale)
    if train is None and val is None:
        return None
    g, loss, rows, wsum = train[:4] if train else (np.zeros(len(weights)), 0.0, 0, 0.0)
    return Sums(g, loss, rows, wsum, *((val.loss, val.weight) if val else (0.0, 0.0)))


@functools.lru_cache(maxsize=64)
def held_out(partition: int, num_rows: int, fraction: float, seed: int) -> np.ndarray:
    """The rows of a partition kept out of training for validation: each with probability ``fraction``,
    drawn from ``(seed, partition)`` alone, so every iteration and every run holds out the same rows."""
    u = np.random.Generator(np.random.PCG64([seed % 2**64, partition])).random(num_rows)
    mask = u < fraction
    mask.setflags(write=False)
    return mask


def _fold(block: Block, pos: np.ndarray | slice, weights: np.ndarray, gradient: Gradient, fit_intercept: bool,
          scale: np.ndarray | None) -> Sums | None:
    y = block.labels[pos]
    if len(y) == 0:
        return None
    x = block.features[pos]
    sw = None if block.weights is None else block.weights[pos]
    if gradient.num_sets > 1:
        return _fold_sets(x, y, sw, weights, gradient, fit_intercept, scale)
    coef = weights[:-1] if fit_intercept else weights
    if scale is not None:
        coef = coef * scale
    margins = x @ coef
    if fit_intercept:
        margins = margins + weights[-1]
    loss, mult = gradient.loss_and_multiplier(margins, y)
    if sw is not None:
        loss, mult = loss * sw, mult * sw
    g = np.asarray(x.T @ mult).ravel()
    if scale is not None:
        g = g * scale
    if fit_intercept:
        g = np.append(g, mult.sum())
    return Sums(g, float(loss.sum()), len(y), float(len(y) if sw is None else sw.sum()))


def _fold_sets(x: Any, y: np.ndarray, sw: np.ndarray | None, weights: np.ndarray, gradient: Gradient,
               fit_intercept: bool, scale: np.ndarray | None) -> Sums:
    """:func:`_fold` for ``K`` coefficient sets: ``weights`` is the ``K x d`` matrix row by row, then
    (``fit_intercept``) the ``K`` intercepts."""
    k = gradient.num_sets
    coef = (weights[:-k] if fit_intercept else weights).reshape(k, -1)
    if scale is not None:
        coef = coef * scale
    margins = np.asarray(x @ coef.T)
    if fit_intercept:
        margins = margins + weights[-k:]
    loss, mult = gradient.loss_and_multiplier(margins, y)
    if sw is not None:
        loss, mult = loss * sw, mult * sw[:, None]
    g = np.asarray(x.T @ mult).T
    if scale is not None:
        g = g * scale
    g = g.ravel()
    if fit_intercept:
        g = np.append(g, mult.sum(axis=0))
    return Sums(g, float(loss.sum()), len(y), float(len(y) if sw is None else sw.sum()))


class FoldSpec(NamedTuple):
    """What every block folds at each iteration: :func:`block_sums`'s settings but the weights and the seed."""

    gradient: Gradient
    fraction: float
    fit_intercept: bool = False
    scale: np.ndarray | None = None
    validation: tuple[float, int] | None = None


def fold(block: Block, weights: np.ndarray, seed: int, spec: FoldSpec) -> Sums | None:
    """:func:`block_sums` of ``block`` at ``weights`` and ``seed`` as ``spec`` says."""
    return block_sums(block, weights, spec.gradient, spec.fraction, seed, spec.fit_intercept, spec.scale,
                      spec.validation)
