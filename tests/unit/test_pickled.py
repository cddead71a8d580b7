"""Blocks from pyspark's pickled batches (sparkgd.core.pickled) are build_block's blocks, bit for bit."""

import io
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from pyspark.mllib.linalg import SparseVector
from pyspark.mllib.regression import LabeledPoint
from pyspark.serializers import BatchedSerializer, CPickleSerializer

from sparkgd.core.block import build_block
from sparkgd.core.pickled import Points, build_block_from_pickles, load_batch


def frames(rows, batch=3):
    """The frames pyspark's batched serializer writes for ``rows`` (as a cached Python RDD holds them)."""
    buf = io.BytesIO()
    BatchedSerializer(CPickleSerializer(), batch).dump_stream(iter(rows), buf)
    raw, out = buf.getvalue(), []
    while raw:  # FramedSerializer: a 4-byte big-endian length, then the pickle
        n = int.from_bytes(raw[:4], "big")
        out.append(raw[4:4 + n])
        raw = raw[4 + n:]
    return out


def batches_of(rows, batch=3):
    """The batches pyspark's ``PointBatches`` hands on: Points, or what pyspark's own unpickler reads."""
    return [load_batch(f) or CPickleSerializer().loads(f) for f in frames(rows, batch)]


def via_pickles(partition, rows, batch=3):
    return build_block_from_pickles(partition, batches_of(rows, batch))


def same_block(a, b):
    assert (a.partition, a.error) == (b.partition, b.error)
    assert a.labels.tobytes() == b.labels.tobytes()
    if sp.issparse(b.features):
        assert sp.issparse(a.features) and (a.features != b.features).nnz == 0
    else:
        assert a.features.dtype == b.features.dtype and a.features.shape == b.features.shape
        assert a.features.tobytes() == b.features.tobytes() and a.features.flags.c_contiguous
    assert (a.weights is None) == (b.weights is None)


def random_points(n, d, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * 10.0 ** rng.integers(-300, 300, (n, d))  # every exponent, sign
    return [LabeledPoint(float(rng.integers(0, 2)), row) for row in x]


def test_dense_labeled_points_are_read_without_objects_and_keep_every_bit():
    rows = random_points(20, 7)
    batches = batches_of(rows)
    assert all(type(b) is Points for b in batches)
    fast = build_block_from_pickles(4, batches)
    same_block(fast, build_block(4, rows))
    assert fast.features.flags.writeable  # as build_block's: the engine may scale in place


@pytest.mark.parametrize("rows", [
    [LabeledPoint(1.0, [1.0, 2.0]), LabeledPoint(0.0, SparseVector(2, [1], [3.0]))],  # a sparse row
    [(1.0, np.array([1.0, 2.0])), (0.0, np.array([3.0, 4.0]))],  # tuples of numpy arrays
    [(1.0, [1.0, 2.0], 2.0), (0.0, [3.0, 4.0], 0.5)],  # weights
])
def test_other_rows_are_unpickled_as_usual(rows):
    batches = batches_of(rows)
    assert not any(type(b) is Points for b in batches)
    same_block(build_block_from_pickles(0, batches), build_block(0, rows))


def test_a_partition_of_points_and_other_batches_is_one_block_in_row_order():
    rows = random_points(3, 2) + [(5.0, np.array([1.0, 2.0]))] + random_points(3, 2, seed=1)
    batches = batches_of(rows)
    assert [type(b) is Points for b in batches] == [True, False, True]
    same_block(build_block_from_pickles(1, batches), build_block(1, rows))


@pytest.mark.parametrize("bad, message", [
    (LabeledPoint(1.0, [1.0, 2.0, 3.0]), "partition 2, row 4: has 3 features, earlier rows of the partition have 2"),
    (LabeledPoint(1.0, [1.0, np.nan]), "partition 2, row 4: NaN or infinite value in features"),
    (LabeledPoint(np.inf, [1.0, 2.0]), "partition 2, row 4: NaN or infinite value in label"),
    (LabeledPoint(1.0, []), "partition 2, row 1: has 2 features, earlier rows of the partition have 0"),
])
def test_bad_rows_give_build_blocks_error(bad, message):
    rows = random_points(4, 2) + [bad] + random_points(2, 2)
    if not bad.features.size:
        rows = [bad] + rows[:4] + rows[5:]
    block = via_pickles(2, rows)
    assert block.error == build_block(2, rows).error
    assert block.error == message


def test_a_users_own_slices_and_bytes_are_not_taken_for_points():
    for batch in ([slice(1.0, np.ones(2).tobytes())], [slice(1.0, b"\x00" * 16), LabeledPoint(0.0, [1.0, 2.0])]):
        assert load_batch(pickle.dumps(batch)) is None


def test_an_empty_partition_is_an_empty_block():
    same_block(build_block_from_pickles(0, []), build_block(0, []))


def test_features_pickled_as_python_2_strings_by_the_jvm_are_read_as_bytes():
    # MLlib's SerDe (Pyrolite) writes a DenseVector's bytes with BINSTRING, which pyspark reads with
    # encoding="bytes"; a 16-byte value that is not ASCII must come back as the same doubles.
    raw = np.array([-1.5, 2.0 ** -1070]).tobytes()
    body = (b"\x80\x02]q\x00(cpyspark.mllib.regression\nLabeledPoint\nG?\xf0\x00\x00\x00\x00\x00\x00"
            b"cpyspark.mllib.linalg\nDenseVector\nT" + len(raw).to_bytes(4, "little") + raw + b"\x85R\x86Re.")
    points = load_batch(body)
    assert type(points) is Points and points[0].start == 1.0
    assert np.frombuffer(points[0].stop).tolist() == [-1.5, 2.0 ** -1070]
    assert CPickleSerializer().loads(body)[0].features.toArray().tolist() == [-1.5, 2.0 ** -1070]
