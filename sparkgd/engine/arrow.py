"""DataFrame rows into blocks through Arrow record batches, without Python row objects.

``DataFrame.rdd`` turns every row into a Python ``Row`` and every vector into a
``pyspark.ml.linalg`` object, about 20 microseconds a row. Spark can instead hand each
partition over as Arrow record batches (the same partitions, rows in the same order), which
numpy reads column by column. A ``VectorUDT`` column arrives as its SQL struct
``(type, size, indices, values)``: ``type`` 1 is a dense vector (all of ``values``), 0 a
sparse one of ``size`` entries.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import scipy.sparse as sp

try:
    import pyarrow as pa
    import pyarrow.compute as pc
except ImportError as e:  # the DataFrame API reads rows as Arrow batches
    raise ImportError(f"sparkgd.ml needs pyarrow ({e}); install it with: pip install 'sparkgd[ml]'") from e
from pyspark import RDD
from pyspark.sql import DataFrame

from sparkgd.core.block import Block, bad_block, check_finite, index_error
from sparkgd.engine import _spark


def record_batches(df: DataFrame) -> tuple[RDD, bytes]:
    """An RDD of each partition's serialized Arrow record batches, and the serialized schema."""
    found = _spark.arrow_batches(df)
    if found is None:
        raise RuntimeError("this Spark version cannot hand DataFrame partitions over as Arrow batches")
    return found


def _first(mask: np.ndarray) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None


def build_block_from_batches(partition: int, batches: Iterable[bytes], columns: tuple[str, str, str], *,
                             schema: bytes) -> Block:
    """A :class:`Block` from the record batches of ``(label double, features vector[, weight double])``.

    The checks and messages are those of :func:`sparkgd.engine.blocks.build_block`, with the same row numbers.
    """
    arrow_schema = pa.ipc.read_schema(pa.py_buffer(schema))
    table = pa.Table.from_batches(
        [pa.ipc.read_record_batch(pa.py_buffer(b), arrow_schema) for b in batches], arrow_schema)
    return block_from_table(partition, table, columns)


def block_from_table(partition: int, table: pa.Table, columns: tuple[str, str, str]) -> Block:
    """A :class:`Block` from a table of ``(label double, features vector[, weight double])``."""
    n = table.num_rows
    nulls = [_first(np.asarray(c.is_null())) if n else None for c in table.columns]
    bad = [(row, role) for role, row in enumerate(nulls) if row is not None]
    if bad:
        row, role = min(bad)
        return bad_block(partition, f"partition {partition}, row {row}: {columns[role]} is null")
    y = table.column(0).to_numpy().astype(np.float64, copy=False)
    w = table.column(2).to_numpy().astype(np.float64, copy=False) if table.num_columns > 2 else None
    if n == 0:
        return Block(partition, y, np.empty((0, 0)), w)
    vec = table.column(1).combine_chunks()
    dense = vec.field("type").to_numpy(zero_copy_only=False) == 1
    values = vec.field("values")
    counts = pc.list_value_length(values).to_numpy(zero_copy_only=False)
    flat = values.flatten().to_numpy()
    sizes = np.where(dense, counts, vec.field("size").fill_null(0).to_numpy(zero_copy_only=False))
    other = _first(sizes != sizes[0])
    if other is not None:
        return bad_block(partition, f"partition {partition}, row {other}: has {sizes[other]} features, "
                                    f"earlier rows of the partition have {sizes[0]}")
    d = int(sizes[0])
    if dense.all():
        x: np.ndarray | sp.csr_matrix = flat.reshape(n, d)
        data = x
    else:
        x = _csr(dense, counts, flat, vec.field("indices").flatten().to_numpy(), d)
        bad = index_error(partition, x.indices, x.indptr, d, columns)
        if bad is not None:
            return bad_block(partition, bad)
        data = x.data
    block = Block(partition, y, x, w)
    check_finite(block, data, columns)
    return block


def _csr(dense: np.ndarray, counts: np.ndarray, flat: np.ndarray, sparse_indices: np.ndarray,
         d: int) -> sp.csr_matrix:
    """CSR rows; dense rows keep only their non-zeros, as ``build_block`` does.

    ``flat`` holds every row's values in row order; ``sparse_indices`` the indices of the
    sparse rows only, in the same order, so they line up with those rows' values.
    """
    n = len(counts)
    row = np.repeat(np.arange(n), counts)
    from_dense = dense[row]
    col = np.empty(len(flat), dtype=np.int64)
    starts = np.cumsum(counts) - counts
    col[from_dense] = (np.arange(len(flat)) - np.repeat(starts, counts))[from_dense]
    col[~from_dense] = sparse_indices
    keep = ~from_dense | (flat != 0.0)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row[keep], minlength=n))])
    return sp.csr_matrix((flat[keep], col[keep], indptr), shape=(n, d))
