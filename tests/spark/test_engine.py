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
from sparkgd.core.block import FoldSpec, fold
from sparkgd.core.sums import merge
from sparkgd.core.tree import CombineTree
from sparkgd.engine import aggregation
from sparkgd.engine.blocks import build_blocks
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


def test_weights_travel_as_a_broadcast_so_the_task_function_stays_small(sc):
    d = 200_000
    bc = sc.broadcast(np.ones(d))
    try:
        spec = FoldSpec(LeastSquaresGradient(), 0.1)
        leaf = functools.partial(aggregation._leaf, tree=CombineTree(8, 2), weights=bc, seed=43, spec=spec)
        size = len(CloudPickleSerializer().dumps(leaf))
    finally:
        # pickling registered the broadcast for the next job's tasks: keep it usable (unpersist, not destroy)
        bc.unpersist()
    assert size < 4096, f"function of {size} bytes"


@pytest.mark.parametrize("partitions,depth", [(9, 2), (16, 3), (5, 1)])
def test_the_job_combines_floats_in_the_tree_order_bit_for_bit(sc, partitions, depth):
    # wide enough (d = 10_000) that the driver receives the root only, combined on an executor
    rng = np.random.default_rng(partitions)
    d = 10_000
    rows = [(float(rng.normal()), rng.normal(size=d) * 10.0 ** rng.integers(-6, 7)) for _ in range(4 * partitions)]
    blocks = build_blocks(sc.parallelize(rows, partitions))
    spec = FoldSpec(LeastSquaresGradient(), 1.0)
    tree = CombineTree(partitions, depth)
    w = rng.normal(size=d)
    try:
        assert aggregation.top_level(tree, d) == tree.height
        got = aggregation.tree_aggregate(blocks.rdd, tree, w, 7, spec)
        local = {b.partition: fold(b, w, 7, spec) for b in blocks.rdd.collect()}
    finally:
        blocks.unpersist()
    want = tree.combine({(0, p): acc for p, acc in local.items()}, merge)
    assert got[0].tobytes() == want[0].tobytes() and got[1:] == want[1:]
    # the order shows in the bits, so the test can fail: another order gives other bits
    backwards = None
    for p in sorted(local, reverse=True):
        backwards = merge(backwards, local[p])
    assert backwards[0].tobytes() != want[0].tobytes()
    if tree.height > 1:  # a tree of two or more levels is not the plain left fold
        plain = None
        for p in sorted(local):
            plain = merge(plain, local[p])
        assert plain[0].tobytes() != want[0].tobytes()


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


def test_callback_sees_every_iteration_of_the_public_engine_and_the_estimators(spark, regression):
    """#21.8: progress can be watched from the public API; each state is the loop's after that iteration."""
    x, y, rdd = regression
    seen = []
    result = run_minibatch_sgd(rdd, LeastSquaresGradient(), SimpleUpdater(), num_iterations=6, step_size=0.1,
                               mini_batch_fraction=0.5, convergence_tol=0.0,
                               callback=lambda s: seen.append((s.iteration, list(s.loss_history), s.weights.copy())))
    assert [t for t, _, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert [h for _, h, _ in seen] == [result.loss_history[:t] for t in range(1, 7)]
    np.testing.assert_array_equal(seen[-1][2], result.weights)
    assert not np.array_equal(seen[0][2], seen[-1][2])

    from sparkgd.ml import SGDLinearRegression

    df = spark.createDataFrame([(float(a), MLVectors.dense(r)) for a, r in zip(y, x)], ["label", "features"])
    iterations = []
    est = SGDLinearRegression(maxIter=4, tol=0.0).setCallback(lambda s: iterations.append(s.iteration))
    model = est.fit(df)
    assert iterations == [1, 2, 3, 4] == list(range(1, model.summary.totalIterations + 1))
    est.setCallback(None).fit(df)
    assert iterations == [1, 2, 3, 4]
