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
