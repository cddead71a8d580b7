"""sparkgd.rdd against pyspark.mllib's JVM trainers on the same RDD: the same model."""

import warnings

import numpy as np
import pytest
from pyspark.mllib import classification as mllib_cls
from pyspark.mllib import regression as mllib_reg

import sparkgd.rdd as sgd
from tests.spark.data import labeled_points, make_problem, partitioned

FRACTIONS = [1.0, 0.5, 0.4, 0.1, 0.01]
TRAINERS = {
    "LinearRegressionWithSGD": ("regression", dict(step=0.5), [None, "l2", "l1", "l2", None]),
    "LassoWithSGD": ("regression", dict(step=0.5, regParam=0.05), None),
    "RidgeRegressionWithSGD": ("regression", dict(step=0.5, regParam=0.05), None),
    "LogisticRegressionWithSGD": ("classification", dict(), ["l2", "l1", None, "l1", "l2"]),
    "SVMWithSGD": ("classification", dict(step=0.5), ["l1", None, "l2", "l2", "l1"]),
}
CASES = [(name, i, f) for name in TRAINERS for i, f in enumerate(FRACTIONS)]


@pytest.fixture(scope="module")
def rdds(sc):
    out = {}
    for kind in ("regression", "classification"):
        x, y = make_problem(kind)
        for sparse in (False, True):
            out[kind, sparse] = partitioned(sc, labeled_points(x, y, sparse)).cache()
    return out


def oracle(name):
    return getattr(mllib_reg, name, None) or getattr(mllib_cls, name)


def both(name, rdd, **kw):
    """MLlib's model and sparkgd's; MLlib trains in a second thread (Spark runs both jobs at once)."""
    from concurrent.futures import ThreadPoolExecutor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ThreadPoolExecutor(1) as pool:
            ref = pool.submit(oracle(name).train, rdd, **kw)
            mine = getattr(sgd, name).train(rdd, **kw)
            return ref.result(), mine


def assert_same_model(ref, mine, rtol=1e-9):
    a = np.append(ref.weights.toArray(), ref.intercept)
    b = np.append(mine.weights.toArray(), mine.intercept)
    scale = max(np.max(np.abs(a)), 1e-300)
    assert np.max(np.abs(a - b)) <= rtol * scale, (a, b)


@pytest.mark.parametrize("name,i,fraction", CASES)
def test_same_model_as_mllib(rdds, name, i, fraction):
    kind, kw, reg_types = TRAINERS[name]
    intercept = i % 2 == 0
    sparse = (i // 2) % 2 == 1 if name not in ("LinearRegressionWithSGD", "LogisticRegressionWithSGD") else i % 3 == 1
    kw = dict(kw, iterations=20, miniBatchFraction=fraction, intercept=intercept, convergenceTol=0.0)
    if reg_types is not None:
        kw["regType"] = reg_types[i]
        if reg_types[i] is not None and name == "LinearRegressionWithSGD":
            kw["regParam"] = 0.05
    ref, mine = both(name, rdds[kind, sparse], **kw)
    assert_same_model(ref, mine)
    assert mine.numIterations == 20
    assert len(mine.lossHistory) == 20 if fraction >= 0.1 else 0 < len(mine.lossHistory) <= 20


@pytest.mark.parametrize("name,fraction", [("LinearRegressionWithSGD", 1.0), ("LogisticRegressionWithSGD", 0.5)])
def test_convergence_tol_stops_at_the_same_iteration(rdds, name, fraction):
    kind = "regression" if "Linear" in name else "classification"
    kw = dict(iterations=200, miniBatchFraction=fraction, intercept=True, convergenceTol=0.02, step=0.5)
    ref, mine = both(name, rdds[kind, False], **kw)
    assert 2 < mine.numIterations < 200
    assert_same_model(ref, mine)
    # one iteration fewer is a different model, so MLlib stopped exactly where sparkgd did
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shorter = oracle(name).train(rdds[kind, False], **dict(kw, iterations=mine.numIterations - 1))
    assert not np.allclose(shorter.weights.toArray(), mine.weights.toArray(), rtol=1e-9, atol=0)


def test_initial_weights_are_honoured_like_mllib(rdds):
    w0 = [0.5, -0.5, 0.25, 0.0, 1.0]
    kw = dict(iterations=20, initialWeights=w0, intercept=True, regParam=0.05, step=0.5)
    ref, mine = both("RidgeRegressionWithSGD", rdds["regression", False], **kw)
    assert_same_model(ref, mine)


def test_zero_iterations_returns_the_initial_weights_with_mllib_intercept(rdds):
    ref, mine = both("LinearRegressionWithSGD", rdds["regression", False], iterations=0, intercept=True)
    assert_same_model(ref, mine, rtol=0)
    assert mine.intercept == 1.0 and mine.numIterations == 0
