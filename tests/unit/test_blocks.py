import numpy as np
import pytest
import scipy.sparse as sp
from pyspark.ml.linalg import Vectors as MLVectors
from pyspark.mllib.linalg import SparseVector, Vectors
from pyspark.mllib.regression import LabeledPoint

from sparkgd.core.block import build_block, summarize


def test_dense_rows_of_every_kind_make_one_dense_block():
    rows = [LabeledPoint(1.0, [1.0, 2.0]), (0.0, np.array([3.0, 4.0])), (1.0, Vectors.dense([5.0, 6.0])),
            (0.0, MLVectors.dense([7.0, 8.0])), [1.0, (9.0, 10.0)]]
    b = build_block(3, rows)
    assert b.partition == 3 and b.error is None
    np.testing.assert_array_equal(b.features, [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]])
    np.testing.assert_array_equal(b.labels, [1, 0, 1, 0, 1])


def test_any_sparse_row_makes_a_csr_block_in_row_order():
    rows = [(1.0, [1.0, 0.0, 2.0]), (2.0, SparseVector(3, [1], [5.0])), (3.0, MLVectors.sparse(3, [0, 2], [1.0, 1.0]))]
    b = build_block(0, rows)
    assert sp.issparse(b.features)
    np.testing.assert_array_equal(b.features.toarray(), [[1, 0, 2], [0, 5, 0], [1, 0, 1]])


def test_weights_are_kept():
    b = build_block(0, [(1.0, [1.0], 2.0), (0.0, [2.0], 0.5)])
    np.testing.assert_array_equal(b.weights, [2.0, 0.5])


def test_empty_partition():
    b = build_block(4, [])
    assert b.num_rows == 0 and b.num_features is None and b.error is None


@pytest.mark.parametrize("rows,message", [
    ([(1.0, [1.0, 2.0]), (1.0, [1.0])], "partition 2, row 1: has 1 features"),
    ([(1.0, [1.0]), (float("nan"), [1.0])], "partition 2, row 1: NaN or infinite"),
    ([(1.0, [1.0]), (1.0, [1.0]), (0.0, [float("inf")])], "partition 2, row 2: NaN or infinite"),
    ([(1.0, SparseVector(2, [0], [float("nan")]))], "partition 2, row 0: NaN"),
    ([(1.0, [1.0]), "text"], "partition 2, row 1: a row must be"),
    ([("a", [1.0])], "partition 2, row 0: label must be a number"),
])
def test_bad_rows_are_recorded_with_partition_and_row(rows, message):
    b = build_block(2, rows)
    assert message in b.error


def test_summary_counts_labels_outside_0_1():
    b = build_block(0, [(2.0, [1.0]), (1.0, [1.0]), (-1.0, [1.0]), (2.0, [1.0])])
    s = summarize(b)
    assert s.bad_label_count == 3 and s.bad_labels == [-1.0, 2.0]


@pytest.mark.parametrize("index,row", [(5, 3), (-1, 1), (2, 2)])
def test_sparse_indices_outside_the_vector_are_refused_naming_row_and_index(index, row):
    """scipy trusts CSR indices: one out of range read and wrote outside the arrays (#21.2)."""
    rows = [(1.0, SparseVector(2, [0], [1.0])) for _ in range(6)]
    # mllib's SparseVector does not check its indices; build the bad one around the check
    bad = SparseVector(2, [0], [1.0])
    bad.indices = np.array([0, index]) if index != -1 else np.array([index])
    bad.values = np.ones(len(bad.indices))
    rows[row] = (1.0, bad)
    b = build_block(7, rows)
    assert b.error == (f"partition 7, row {row}: features has index {index}, outside the vector's size 2 "
                       "(valid indices: 0 to 1)")
    assert b.num_rows == 0  # nothing of the partition is kept for arithmetic


def test_the_arrow_path_refuses_out_of_range_indices_too():
    pa = pytest.importorskip("pyarrow")
    from sparkgd.engine.arrow import block_from_table

    vec = pa.StructArray.from_arrays(
        [pa.array([0, 0, 1], pa.int8()), pa.array([3, 3, None], pa.int32()),
         pa.array([[0], [1, 3], None], pa.list_(pa.int32())), pa.array([[1.0], [1.0, 2.0], [1.0, 2.0, 3.0]])],
        ["type", "size", "indices", "values"])
    table = pa.table({"label": [1.0, 2.0, 3.0], "features": vec})
    b = block_from_table(4, table, ("column 'y'", "column 'v'", "weight"))
    assert b.error == "partition 4, row 1: column 'v' has index 3, outside the vector's size 3 (valid indices: 0 to 2)"
    table = pa.table({"label": [1.0, 2.0], "features": vec.slice(0, 1).take([0, 0])})
    assert block_from_table(4, table, ("y", "v", "w")).error is None
