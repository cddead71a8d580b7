"""The SGD loop against a numpy oracle, and MLlib's GradientDescentSuite identities."""

import functools

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors as MLVectors
from pyspark.serializers import CloudPickleSerializer

from sparkgd import (
    HingeGradient,
    L1Updater,
    LeastSquaresGradient,
    LogisticGradient,
    SimpleUpdater,
    SquaredL2Updater,
    run_minibatch_sgd,
)
from sparkgd.aggregation import IteratedAggregation, decode, encode
from sparkgd.optimize import _comb_op, _stored_seq_op
from tests.reference import reference_sgd
from tests.spark.data import make_problem, partitioned, parts_of


@pytest.fixture(scope="module")
def regression(sc):
    x, y = make_problem("regression")
    return x, y, partitioned(sc, list(zip(y, x))).cache()


@pytest.fixture(scope="module")
def classification(sc):
    x, y = make_problem("classification")
    return x, y, partitioned(sc, list(zip(y, x))).cache()


@pytest.mark.parametrize("gradient,updater,fraction", [
    (LeastSquaresGradient(), SimpleUpdater(), 1.0),
    (LeastSquaresGradient(), L1Updater(), 0.3),
    (LogisticGradient(), SquaredL2Updater(), 0.05),
    (HingeGradient(), SquaredL2Updater(), 0.7),
])
def test_engine_equals_the_numpy_reference(regression, classification, gradient, updater, fraction):
    x, y, rdd = regression if gradient.name == "squared" else classification
    kw = dict(step_size=0.5, num_iterations=15, reg_param=0.1, seed=7)
    got = run_minibatch_sgd(rdd, gradient, updater, mini_batch_fraction=fraction, convergence_tol=0.0, **kw)
    w, hist, t = reference_sgd(parts_of(x, y), gradient, updater, fraction=fraction, tol=0.0, **kw)
    np.testing.assert_allclose(got.weights, w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got.loss_history, hist, rtol=1e-12)
    assert got.num_iterations == t == 15


def test_loss_goes_down(regression):
    _, _, rdd = regression
    res = run_minibatch_sgd(rdd, LeastSquaresGradient(), SimpleUpdater(), step_size=0.3, num_iterations=30,
                            convergence_tol=0.0)
    h = np.array(res.loss_history)
    assert len(h) == 30 and (np.diff(h) <= 1e-12).all() and h[-1] < 0.2 * h[0]


def test_first_l2_step_has_the_closed_form(regression):
    # GradientDescentSuite: w1 = w0 (1 - step * lambda) - step * g(w0)
    _, _, rdd = regression
    w0 = np.array([1.0, -1.0, 0.5, 0.0, 2.0])
    step, lam = 0.3, 0.7
    plain = run_minibatch_sgd(rdd, LeastSquaresGradient(), SimpleUpdater(), step_size=step, num_iterations=1,
                              initial_weights=w0)
    l2 = run_minibatch_sgd(rdd, LeastSquaresGradient(), SquaredL2Updater(), step_size=step, num_iterations=1,
                           reg_param=lam, initial_weights=w0)
    np.testing.assert_allclose(l2.weights, plain.weights - step * lam * w0, rtol=1e-13)
    # the first loss includes the regularization of w0
    assert l2.loss_history[0] == pytest.approx(plain.loss_history[0] + 0.5 * lam * w0 @ w0, rel=1e-13)


def test_convergence_tol_stops_early(regression):
    _, _, rdd = regression
    loose = run_minibatch_sgd(rdd, LeastSquaresGradient(), SimpleUpdater(), step_size=0.3, num_iterations=100,
                              convergence_tol=0.05)
    assert 2 <= loose.num_iterations < 100 and len(loose.loss_history) == loose.num_iterations
    tight = run_minibatch_sgd(rdd, LeastSquaresGradient(), SimpleUpdater(), step_size=0.3,
                              num_iterations=loose.num_iterations + 5, convergence_tol=0.0)
    assert tight.num_iterations == loose.num_iterations + 5


def test_task_function_is_shipped_once_and_stays_small(sc):
    # the weights travel as a local property of each iteration's job, not in the pickled function
    d = 200_000
    fold = functools.partial(_stored_seq_op, store_id="s", gradient=LeastSquaresGradient(), fraction=0.1,
                             fit_intercept=False, scale=None)
    job = IteratedAggregation(sc, 2, fold, _comb_op, 2, key="sparkgd.test")
    try:
        size = len(CloudPickleSerializer().dumps(job._partials.func))
        # no block is stored under "s": each task decodes the property and reports its partition missing
        assert job(np.ones(d), 43) == (None, 0.0, 0, 0.0, (0, 1))
        assert job(np.ones(d), 44) == (None, 0.0, 0, 0.0, (0, 1))
    finally:
        job.close()
    assert size < 4096, f"function of {size} bytes"
    w = np.random.default_rng(0).normal(size=d)
    seed, back = decode(encode(2**40 + 3, w))
    assert seed == 2**40 + 3 and back.tobytes() == w.tobytes()


def test_many_partitions_combine_through_tree_levels_like_tree_aggregate(sc):
    from sparkgd.aggregation import _levels

    assert _levels(2, 2) == [] and _levels(9, 2) == [3]  # pyspark's treeAggregate shuffles at 9, depth 2

    def fold(acc, partition, *, weights, seed):
        return (acc or 0.0) + weights[partition] * seed

    job = IteratedAggregation(sc, 9, fold, lambda a, b: b if a is None else a + b, 2,
                              key="sparkgd.test.tree")
    try:
        w = np.arange(1.0, 10.0)
        assert job(w, 3) == 3 * w.sum() and job(w, 5) == 5 * w.sum()
    finally:
        job.close()


def test_results_are_deterministic_and_seeded(classification):
    _, _, rdd = classification
    kw = dict(step_size=1.0, num_iterations=10, mini_batch_fraction=0.2, convergence_tol=0.0)
    a = run_minibatch_sgd(rdd, LogisticGradient(), SimpleUpdater(), **kw)
    b = run_minibatch_sgd(rdd, LogisticGradient(), SimpleUpdater(), **kw)
    c = run_minibatch_sgd(rdd, LogisticGradient(), SimpleUpdater(), seed=1, **kw)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, c.weights)


def test_ml_vectors_and_tuples_are_accepted(sc):
    rows = [(1.0, MLVectors.dense([1.0, 0.0])), (2.0, MLVectors.sparse(2, [1], [1.0])),
            (3.0, MLVectors.dense([1.0, 1.0]))]
    res = run_minibatch_sgd(sc.parallelize(rows, 2), LeastSquaresGradient(), SimpleUpdater(), step_size=0.5,
                            num_iterations=10, convergence_tol=0.0)
    x, y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([1.0, 2.0, 3.0])
    w, _, _ = reference_sgd([(x[:1], y[:1]), (x[1:], y[1:])], LeastSquaresGradient(), SimpleUpdater(),
                            step_size=0.5, num_iterations=10, tol=0.0)
    np.testing.assert_allclose(res.weights, w, rtol=1e-13)


def test_empty_rdd_returns_initial_weights_with_a_warning(sc):
    with pytest.warns(RuntimeWarning, match="empty"):
        res = run_minibatch_sgd(sc.parallelize([], 2), LeastSquaresGradient(), SimpleUpdater(),
                                initial_weights=[1.0, 2.0])
    assert res.weights.tolist() == [1.0, 2.0] and res.loss_history == [] and res.num_iterations == 0


def test_blocks_missing_from_the_store_fall_back_to_the_cached_rdd(regression):
    from sparkgd.blocks import BlockedData
    from sparkgd.optimize import descend

    _, _, rdd = regression
    blocks = BlockedData(rdd)
    try:
        kw = dict(num_iterations=5, mini_batch_fraction=0.5, convergence_tol=0.0, step_size=0.5)
        stored = descend(blocks, LeastSquaresGradient(), SimpleUpdater(), np.zeros(5), **kw)
        blocks.store_id = "sparkgd-store-that-no-host-has"  # every task misses: the driver falls back
        fallback = descend(blocks, LeastSquaresGradient(), SimpleUpdater(), np.zeros(5), **kw)
    finally:
        blocks.unpersist()
    np.testing.assert_allclose(fallback.weights, stored.weights, rtol=1e-14)
    assert fallback.loss_history == pytest.approx(stored.loss_history, rel=1e-14)
