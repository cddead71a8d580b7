"""DataFrame rows read through Arrow batches give the blocks that Python row objects give."""

import numpy as np
import pytest
import scipy.sparse as sp
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql.types import DoubleType, StructField, StructType

from sparkgd.core.block import build_block
from sparkgd.engine.arrow import build_block_from_batches, record_batches

NAMES = ("column 'label'", "column 'features'", "column 'w'")
SCHEMA = StructType([StructField("label", DoubleType()), StructField("features", VectorUDT()),
                     StructField("w", DoubleType())])


def both_ways(spark, groups):
    """Blocks both ways of a DataFrame whose partition ``p`` holds the rows ``groups[p]``."""
    rdd = spark.sparkContext.parallelize(range(len(groups)), len(groups)).flatMap(lambda p: groups[p])
    df = spark.createDataFrame(rdd, SCHEMA)
    batches, schema = record_batches(df)
    by_arrow = batches.mapPartitionsWithIndex(
        lambda p, it: [build_block_from_batches(p, it, NAMES, schema=schema)]).collect()
    by_rows = df.rdd.mapPartitionsWithIndex(lambda p, it: [build_block(p, it, NAMES)]).collect()
    return by_arrow, by_rows


def dense(x):
    return x.toarray() if sp.issparse(x) else x


def test_same_blocks_for_dense_sparse_mixed_and_empty_partitions(spark):
    rng = np.random.default_rng(0)
    groups = [[], [], []]  # partition 0: dense and sparse rows; 1: dense rows only; 2: empty
    for i in range(40):
        v = rng.normal(size=5) * (rng.random(5) < 0.5)
        vec = Vectors.dense(v) if i % 3 else Vectors.sparse(5, np.flatnonzero(v), v[v != 0])
        groups[0].append((float(i % 2), vec, float(i)))
        groups[1].append((float(i), Vectors.dense(v), 1.0))
    groups[0].append((1.0, Vectors.sparse(5, [0, 4], [0.0, 2.0]), 99.0))  # an explicit zero is kept
    by_arrow, by_rows = both_ways(spark, groups)
    assert any(b.num_rows == 0 for b in by_rows) and any(sp.issparse(b.features) for b in by_rows)
    assert any(isinstance(b.features, np.ndarray) and b.num_rows for b in by_rows)
    for a, b in zip(by_arrow, by_rows):
        assert (a.partition, a.error, a.num_rows) == (b.partition, b.error, b.num_rows)
        assert sp.issparse(a.features) == sp.issparse(b.features)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.weights, b.weights)
        if b.num_rows:
            np.testing.assert_array_equal(dense(a.features), dense(b.features))
        if sp.issparse(b.features):
            assert a.features.nnz == b.features.nnz


@pytest.mark.parametrize("bad_row, message", [
    ((None, Vectors.dense([1.0, 2.0]), 2.0), "row 3: column 'label' is null"),
    ((1.0, None, 2.0), "row 3: column 'features' is null"),
    ((1.0, Vectors.dense([1.0, 2.0]), None), "row 3: column 'w' is null"),
    ((1.0, Vectors.dense([1.0, 2.0, 3.0]), 2.0), "row 3: has 3 features, earlier rows of the partition have 2"),
    ((1.0, Vectors.sparse(2, [1], [float("nan")]), 2.0), "row 3: NaN or infinite value in column 'features'"),
    ((float("inf"), Vectors.dense([1.0, 2.0]), 2.0), "row 3: NaN or infinite value in column 'label'"),
])
def test_same_error_for_the_same_bad_row(spark, bad_row, message):
    good = [(1.0, Vectors.dense([1.0, 2.0]), 0.0), (1.0, Vectors.sparse(2, [0], [3.0]), 1.0),
            (1.0, Vectors.dense([0.5, 0.5]), 3.0)]
    by_arrow, by_rows = both_ways(spark, [good + [bad_row]])
    assert by_arrow[0].error == by_rows[0].error
    assert by_arrow[0].error.endswith(message)
