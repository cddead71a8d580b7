"""Bad input is refused with a message naming the parameter, or the partition and row."""

import numpy as np
import pytest
from pyspark.mllib.regression import LabeledPoint

from sparkgd import LeastSquaresGradient, SimpleUpdater, run_minibatch_sgd
from sparkgd.rdd import LinearRegressionWithSGD, LogisticRegressionWithSGD, SVMWithSGD


@pytest.fixture(scope="module")
def good(sc):
    return sc.parallelize([LabeledPoint(float(i % 2), [float(i), 1.0]) for i in range(20)], 2).cache()


@pytest.mark.parametrize("trainer", [LogisticRegressionWithSGD, SVMWithSGD])
def test_classifier_labels_outside_0_1_are_counted_and_listed(sc, trainer):
    rdd = sc.parallelize([LabeledPoint(v, [1.0]) for v in [0.0, 1.0, 2.0, -1.0, 2.0, 1.0]], 2)
    with pytest.raises(ValueError, match=r"found 3 invalid labels, values \[-1.0, 2.0\]"):
        trainer.train(rdd, iterations=1)
    import warnings

    from pyspark.mllib import classification

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(classification, trainer.__name__).train(rdd, iterations=1, validateData=False)
    mine = trainer.train(rdd, iterations=1, validateData=False)  # MLlib lets this through too: the same model
    np.testing.assert_allclose(mine.weights.toArray(), ref.weights.toArray(), rtol=1e-12)


def test_rows_of_different_lengths_name_partition_and_row(sc):
    rdd = sc.parallelize([LabeledPoint(1.0, [1.0, 2.0]), LabeledPoint(1.0, [1.0, 2.0]),
                          LabeledPoint(1.0, [1.0, 2.0]), LabeledPoint(1.0, [1.0])], 2)
    with pytest.raises(ValueError, match="partition 1, row 1: has 1 features"):
        LinearRegressionWithSGD.train(rdd)
    across = sc.parallelize([LabeledPoint(1.0, [1.0, 2.0]), LabeledPoint(1.0, [1.0, 2.0, 3.0])], 2)
    with pytest.raises(ValueError, match="partition 1, row 0: has 3 features, rows of partition 0 have 2"):
        LinearRegressionWithSGD.train(across)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_name_partition_and_row(sc, bad):
    rdd = sc.parallelize([LabeledPoint(1.0, [1.0]), LabeledPoint(1.0, [1.0]), LabeledPoint(1.0, [1.0]),
                          LabeledPoint(1.0, [bad])], 2)
    with pytest.raises(ValueError, match="partition 1, row 1: NaN or infinite"):
        LinearRegressionWithSGD.train(rdd)
    with pytest.raises(ValueError, match="partition 0, row 0: NaN or infinite"):
        LinearRegressionWithSGD.train(sc.parallelize([LabeledPoint(bad, [1.0])], 1))


@pytest.mark.parametrize("kw,name", [
    (dict(miniBatchFraction=0.0), "miniBatchFraction"),
    (dict(miniBatchFraction=1.5), "miniBatchFraction"),
    (dict(miniBatchFraction=float("nan")), "miniBatchFraction"),
    (dict(iterations=-1), "iterations"),
    (dict(iterations=2.5), "iterations"),
    (dict(regParam=-0.1), "regParam"),
    (dict(step=0.0), "step"),
    (dict(step=-1.0), "step"),
    (dict(convergenceTol=-1.0), "convergenceTol"),
    (dict(regType="l3"), "regType"),
])
def test_bad_parameters_are_refused_before_any_job(sc, kw, name):
    # evaluating this RDD would fail on a worker: the error must come first, on the driver
    poisoned = sc.parallelize([1], 1).map(lambda _: 1 / 0)
    with pytest.raises(ValueError, match=name):
        LinearRegressionWithSGD.train(poisoned, **kw)


def test_engine_parameters_are_named(sc):
    poisoned = sc.parallelize([1], 1).map(lambda _: 1 / 0)
    with pytest.raises(ValueError, match="aggregation_depth"):
        run_minibatch_sgd(poisoned, LeastSquaresGradient(), SimpleUpdater(), aggregation_depth=0)
    with pytest.raises(ValueError, match="mini_batch_fraction"):
        run_minibatch_sgd(poisoned, LeastSquaresGradient(), SimpleUpdater(), mini_batch_fraction=2)


def test_initial_weights_of_the_wrong_size(good):
    with pytest.raises(ValueError, match="initialWeights has 3 entries but the data has 2 features"):
        LinearRegressionWithSGD.train(good, initialWeights=[0.0, 0.0, 0.0])


def test_rows_that_are_not_labeled_points(sc):
    with pytest.raises(ValueError, match="partition 0, row 0: a row must be"):
        LinearRegressionWithSGD.train(sc.parallelize(["x"], 1))
    with pytest.raises(TypeError, match="data must be an RDD"):
        LinearRegressionWithSGD.train([LabeledPoint(1.0, [1.0])])


def test_empty_rdd_warns_and_returns_initial_weights(sc):
    with pytest.warns(RuntimeWarning, match="empty"):
        m = LinearRegressionWithSGD.train(sc.parallelize([], 2), initialWeights=[1.0, 2.0])
    assert m.weights.toArray().tolist() == [1.0, 2.0] and m.lossHistory == []


def test_divergence_is_an_error_not_a_nan_model(good):
    from sparkgd import SGDDivergenceError
    with pytest.raises(SGDDivergenceError, match="smaller step"):
        LinearRegressionWithSGD.train(good, iterations=200, step=1e6)
    assert np.isfinite(LinearRegressionWithSGD.train(good, iterations=5, step=1e-3).weights.toArray()).all()


def test_out_of_range_sparse_index_is_an_input_error_not_a_crashed_worker(sc):
    """The issue's call: the workers died with 'free(): invalid next size', then train returned [0, -1.7e123]."""
    from pyspark.mllib.linalg import Vectors

    from sparkgd.core.errors import InputDataError

    rdd = sc.parallelize([LabeledPoint(3.0, Vectors.sparse(2, [1], [1.0]))] * 19
                         + [LabeledPoint(3.0, Vectors.sparse(2, [1, 5], [1.0, 1.0]))], 2)
    with pytest.raises(InputDataError, match=r"partition 1, row 9: features has index 5, outside the vector's size 2"):
        LinearRegressionWithSGD.train(rdd, iterations=50, step=0.5, intercept=False)
    with pytest.raises(InputDataError, match="index 5"):
        run_minibatch_sgd(rdd, LeastSquaresGradient(), SimpleUpdater(), num_iterations=5)


@pytest.mark.parametrize("weights,message", [
    ([1.0, -2.0, 1.0, 1.0], "weight has 1 negative weights; weights must be >= 0"),
    ([0.0, 0.0, 0.0, 0.0], "weight is 0 for all 4 rows; at least one weight must be > 0"),
])
def test_rdd_rows_with_negative_or_all_zero_weights_are_refused(sc, weights, message):
    """(label, features, weight) rows: the same check as the DataFrame API's weightCol (#21.5)."""
    from sparkgd.core.errors import InputDataError

    rdd = sc.parallelize([(1.0, [float(i)], w) for i, w in enumerate(weights)], 2)
    with pytest.raises(InputDataError, match=message.replace("(", r"\(")):
        run_minibatch_sgd(rdd, LeastSquaresGradient(), SimpleUpdater(), num_iterations=5)
    with pytest.raises(InputDataError, match=message.split(";")[0]):
        LinearRegressionWithSGD.train(rdd, iterations=5)
