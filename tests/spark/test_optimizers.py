"""Optimizers beyond MLlib's rule: bit for bit against numpy references written from the papers,
convergence to known optima, early stopping, averaging, and checkpoint/resume of their state."""

import numpy as np
import pytest
import scipy.sparse as sp
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.linalg import Vectors

from sparkgd.core.gradients import LeastSquaresGradient, LogisticGradient
from sparkgd.core.optimizers import make_optimizer
from sparkgd.core.schedules import make_schedule
from sparkgd.core.updaters import ElasticNetUpdater, L1Updater, SimpleUpdater, SquaredL2Updater
from sparkgd.engine.blocks import build_blocks
from sparkgd.engine.loop import descend, run_minibatch_sgd
from sparkgd.ml import SGDLinearRegression, SGDLogisticRegression
from tests.reference import reference_rule
from tests.spark.data import labeled_points, make_problem, partitioned

SIZES = (260, 240)
RULES = ("momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
# (fit_intercept, updater, l1, l2) with reg_param 0.05: each regularizer, with and without intercept
REGS = {"none": (False, SimpleUpdater(), 0.0, 0.0), "l2+b": (True, SquaredL2Updater(), 0.0, 0.05),
        "l1+b": (True, L1Updater(), 0.05, 0.0), "enet": (False, ElasticNetUpdater(0.4), 0.05 * 0.4, 0.05 * (1.0 - 0.4))}


def _parts(x, y):
    return [(x[:SIZES[0]], y[:SIZES[0]]), (x[SIZES[0]:], y[SIZES[0]:])]


@pytest.fixture(scope="module")
def dense(sc):
    x, y = make_problem("regression", n=sum(SIZES))
    return _parts(x, y), build_blocks(partitioned(sc, list(zip(y, x)), SIZES))


@pytest.fixture(scope="module")
def sparse(sc):
    x, y = make_problem("classification", n=sum(SIZES))
    pts = labeled_points(x, y, sparse=True)
    xs = sp.csr_matrix(np.where(np.abs(x) < 0.6, 0.0, x))
    return _parts(xs, y), build_blocks(partitioned(sc, pts, SIZES))


@pytest.mark.parametrize("reg", list(REGS))
@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("rule", RULES)
def test_each_rule_equals_its_reference_bit_for_bit(request, rule, kind, reg):
    parts, blocks = request.getfixturevalue(kind)
    gradient, fraction = (LeastSquaresGradient(), 0.5) if kind == "dense" else (LogisticGradient(), 0.3)
    intercept, updater, l1, l2 = REGS[reg]
    d = blocks.num_features + intercept
    w0 = np.zeros(d)
    if intercept:
        w0[-1] = 1.0
    schedule = make_schedule("invscaling", 0.2, power_t=0.3)
    seen = []
    got = descend(blocks, gradient, updater, w0, optimizer=make_optimizer(rule), step_size=schedule,
                  num_iterations=8, reg_param=0.05, mini_batch_fraction=fraction, convergence_tol=0.0, seed=3,
                  fit_intercept=intercept, penalized=np.arange(d) < d - 1 if intercept else None,
                  callback=lambda s: seen.append(s.weights.copy()))
    want = reference_rule(parts, gradient, rule, steps=schedule, num_iterations=8, l1=l1, l2=l2,
                          fraction=fraction, seed=3, fit_intercept=intercept)
    assert len(seen) == len(want) == 8
    for t, (a, b) in enumerate(zip(seen, want), 1):
        assert a.tobytes() == b.tobytes(), f"iteration {t}: {a} != {b}"
    assert got.weights.tobytes() == want[-1].tobytes()
    assert not np.array_equal(want[0], want[-1])


@pytest.fixture(scope="module")
def least_squares(sc):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 4)) * np.array([1.0, 2.0, 0.5, 1.5])
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.7 + 0.3 * rng.normal(size=600)
    rdd = sc.parallelize([(float(b), a) for a, b in zip(x, y)], 2).cache()
    xb = np.hstack([x, np.ones((600, 1))])
    return rdd, np.linalg.lstsq(xb, y, rcond=None)[0]


@pytest.mark.parametrize("name,schedule,step,iterations,tol", [
    ("sgd", "constant", 0.2, 400, 1e-8),
    ("momentum", "constant", 0.02, 400, 1e-8),
    ("nesterov", "constant", 0.02, 400, 1e-8),
    ("adagrad", "constant", 0.5, 400, 1e-8),
    ("rmsprop", "step", 0.1, 400, 1e-4),  # with beta2 = 0.9
    ("adam", "step", 0.1, 400, 1e-4),
    ("adamw", "step", 0.1, 400, 1e-4),
    ("lbfgs", "invsqrt", 1.0, 60, 1e-9),
])
def test_each_rule_reaches_the_least_squares_optimum(least_squares, name, schedule, step, iterations, tol):
    """Full batches, unscaled features (scales 0.5 to 2), intercept as a column: lstsq's solution."""
    rdd, optimum = least_squares
    sched = make_schedule(schedule, step, decay_rate=0.5, decay_steps=50)
    got = run_minibatch_sgd(rdd.map(lambda r: (r[0], np.append(r[1], 1.0))), LeastSquaresGradient(),
                            SimpleUpdater(), optimizer=make_optimizer(name, beta2=0.9 if name == "rmsprop" else 0.999),
                            step_size=sched,
                            num_iterations=iterations, convergence_tol=0.0)
    assert np.abs(got.weights - optimum).max() < tol * max(1.0, np.abs(optimum).max()), got.weights - optimum


def test_averaged_sgd_reaches_the_optimum_where_the_last_iterate_wanders(sc):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 3))
    y = x @ np.array([1.0, 2.0, -1.0]) + 0.5 * rng.normal(size=600)
    data = sc.parallelize([(float(b), a) for a, b in zip(x, y)], 2)
    optimum = np.linalg.lstsq(x, y, rcond=None)[0]
    kw = dict(step_size=make_schedule("constant", 0.05), num_iterations=400, mini_batch_fraction=0.1,
              convergence_tol=0.0)
    last = run_minibatch_sgd(data, LeastSquaresGradient(), SimpleUpdater(), **kw).weights
    avg = run_minibatch_sgd(data, LeastSquaresGradient(), SimpleUpdater(), average_from=100, **kw).weights
    assert np.abs(avg - optimum).max() < 0.5 * np.abs(last - optimum).max()
    assert np.abs(avg - optimum).max() < 0.01


@pytest.fixture(scope="module")
def logistic_df(spark):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(800, 4)) * np.array([1.0, 3.0, 0.5, 1.0])
    y = (x @ np.array([1.0, -0.5, 2.0, 0.0]) + 0.3 + rng.logistic(size=800) > 0).astype(float)
    return spark.createDataFrame([(float(b), Vectors.dense(a)) for a, b in zip(x, y)],
                                 ["label", "features"]).repartition(2).cache()


@pytest.mark.parametrize("optimizer,elastic,extra", [
    ("lbfgs", 0.0, {}),
    ("lbfgs", 1.0, {}),  # OWL-QN
    ("adam", 0.0, {"stepSize": 0.05, "stepSchedule": "constant", "maxIter": 600}),
    ("nesterov", 0.0, {"stepSize": 0.5, "stepSchedule": "constant", "maxIter": 600}),
    ("adagrad", 1.0, {"stepSize": 0.5, "stepSchedule": "constant", "maxIter": 600}),
    ("sgd", 0.0, {"stepSize": 0.5, "stepSchedule": "constant", "maxIter": 600}),
    ("momentum", 0.0, {"stepSize": 0.05, "stepSchedule": "constant", "maxIter": 600}),
    ("rmsprop", 0.0, {"stepSize": 0.02, "stepSchedule": "step", "decayRate": 0.5, "decaySteps": 100,
                      "beta2": 0.9, "maxIter": 600}),
])
def test_logistic_reaches_spark_ml_with_tight_tolerance(logistic_df, optimizer, elastic, extra):
    ref = LogisticRegression(regParam=0.02, elasticNetParam=elastic, standardization=False, tol=1e-12,
                             maxIter=1000).fit(logistic_df)
    params = {"maxIter": 100, **extra}
    got = SGDLogisticRegression(optimizer=optimizer, regParam=0.02, elasticNetParam=elastic, standardization=False,
                                tol=0.0, **params).fit(logistic_df)
    np.testing.assert_allclose(got.coefficients.toArray(), ref.coefficients.toArray(), atol=2e-4)
    assert abs(got.intercept - ref.intercept) < 2e-4
    if elastic == 1.0:  # the L1 solution's zeros are exact zeros
        assert set(np.flatnonzero(got.coefficients.toArray())) == set(np.flatnonzero(ref.coefficients.toArray()))


def test_owlqn_equals_the_lasso_solution(least_squares):
    from sklearn.linear_model import Lasso

    rdd, _ = least_squares
    rows = rdd.collect()
    x, y = np.array([r[1] for r in rows]), np.array([r[0] for r in rows])
    ref = Lasso(alpha=0.3, fit_intercept=False, tol=1e-12, max_iter=100000).fit(x, y).coef_
    got = run_minibatch_sgd(rdd, LeastSquaresGradient(), L1Updater(), optimizer=make_optimizer("lbfgs"),
                            reg_param=0.3, num_iterations=200, convergence_tol=0.0).weights
    np.testing.assert_allclose(got, ref, atol=1e-7)


def test_early_stopping_holds_rows_out_and_stops_as_scikit_learn_does(least_squares):
    rdd, _ = least_squares
    tol, patience = 1e-3, 4
    res = run_minibatch_sgd(rdd, LeastSquaresGradient(), SimpleUpdater(), optimizer=make_optimizer("adam"),
                            step_size=make_schedule("constant", 0.1), num_iterations=500, convergence_tol=tol,
                            validation_fraction=0.25, n_iter_no_change=patience)
    h = res.validation_history
    assert res.num_iterations < 500 and len(h) == res.num_iterations + 1
    best = np.minimum.accumulate(h)
    # the last `patience` values never beat the best before them by tol; every earlier run of that length did
    assert all(v >= best[-patience - 1] - tol for v in h[-patience:])
    # the held-out loss is a loss on other rows than the training loss: the two histories differ
    assert len(res.loss_history) == len(h) - 1 and not np.allclose(h[:-1], res.loss_history)


def test_held_out_rows_never_reach_the_gradient(sc):
    # rows with absurd labels, all held out by a 100% fraction on their partition, would wreck the model
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 2))
    y = x @ np.array([1.0, 2.0])
    from sparkgd.core.block import held_out

    mask = held_out(0, 200, 0.3, 42)
    y_bad = np.where(mask, 1e6, y)
    rdd = sc.parallelize(list(zip(y_bad, x)), 1)
    res = run_minibatch_sgd(rdd, LeastSquaresGradient(), SimpleUpdater(), optimizer=make_optimizer("lbfgs"),
                            num_iterations=50, convergence_tol=1e-12, validation_fraction=0.3, n_iter_no_change=50)
    np.testing.assert_allclose(res.weights, [1.0, 2.0], atol=1e-6)


@pytest.mark.parametrize("setup", ["adam", "averaged", "lbfgs"])
def test_resume_in_the_middle_ends_with_the_uninterrupted_model(least_squares, tmp_path, setup):
    rdd, _ = least_squares
    kw = dict(num_iterations=20, convergence_tol=0.0, mini_batch_fraction=0.5 if setup != "lbfgs" else 1.0)
    if setup == "adam":
        kw.update(optimizer=make_optimizer("adam"), step_size=make_schedule("constant", 0.1))
    elif setup == "averaged":
        kw.update(optimizer=make_optimizer("momentum"), step_size=make_schedule("constant", 0.01), average_from=4)
    else:
        kw.update(optimizer=make_optimizer("lbfgs"), num_iterations=12)
    whole = run_minibatch_sgd(rdd, LeastSquaresGradient(), SquaredL2Updater(), reg_param=0.1, **kw)

    class Stop(Exception):
        pass

    def crash(state):
        if state.iteration == 7:
            raise Stop

    blocks = build_blocks(rdd)
    w0 = np.zeros(blocks.num_features)
    common = dict(reg_param=0.1, checkpoint_dir=str(tmp_path), checkpoint_interval=5, **kw)
    with pytest.raises(Stop):
        descend(blocks, LeastSquaresGradient(), SquaredL2Updater(), w0, callback=crash, **common)
    ran = []
    resumed = descend(blocks, LeastSquaresGradient(), SquaredL2Updater(), w0, resume=True,
                      callback=lambda s: ran.append(s.iteration), **common)
    assert ran[0] == 6 and ran[-1] == kw["num_iterations"]  # it started from the checkpoint of iteration 5
    assert resumed.weights.tobytes() == whole.weights.tobytes()
    assert resumed.loss_history == whole.loss_history
    # a resume that dropped the optimizer's state (re-initialized at iteration 5) ends elsewhere
    if setup != "averaged":
        fresh = descend(blocks, LeastSquaresGradient(), SquaredL2Updater(), _weights_at(rdd, kw, 5), **{
            **kw, "reg_param": 0.1, "num_iterations": kw["num_iterations"] - 5, "seed": 47})
        assert not np.array_equal(fresh.weights, whole.weights)


def _weights_at(rdd, kw, t):
    return run_minibatch_sgd(rdd, LeastSquaresGradient(), SquaredL2Updater(), reg_param=0.1,
                             **{**kw, "num_iterations": t}).weights


def test_estimator_params_are_validated_by_name_and_saved_with_the_model(logistic_df, tmp_path):
    from sparkgd.ml import SGDLogisticRegressionModel

    for bad, name in [({"optimizer": "adamax"}, "optimizer"), ({"stepSchedule": "cosine"}, "stepSchedule"),
                      ({"beta2": 1.0}, "beta2"), ({"momentum": -0.1}, "momentum"),
                      ({"adaptiveEpsilon": 0.0}, "adaptiveEpsilon"),
                      ({"validationFraction": 1.0}, "validationFraction"),
                      ({"nIterNoChange": 0}, "nIterNoChange"), ({"averageFrom": -1}, "averageFrom"),
                      ({"decayRate": 0.0}, "decayRate"), ({"decaySteps": 0}, "decaySteps"),
                      ({"optimizer": "lbfgs", "miniBatchFraction": 0.5}, "miniBatchFraction"),
                      ({"stepSchedule": "optimal"}, "regParam")]:
        with pytest.raises(ValueError, match=name):
            SGDLogisticRegression(**bad).fit(logistic_df)
    est = SGDLogisticRegression(optimizer="rmsprop", stepSchedule="exponential", beta2=0.99, decayRate=0.7,
                                decaySteps=5, warmupSteps=3, averageFrom=10, validationFraction=0.1,
                                nIterNoChange=7, maxIter=30, stepSize=0.05)
    model = est.fit(logistic_df)
    model.write().save(str(tmp_path / "m"))
    back = SGDLogisticRegressionModel.load(str(tmp_path / "m"))
    for p in ("optimizer", "stepSchedule", "beta2", "decayRate", "decaySteps", "warmupSteps", "averageFrom",
              "validationFraction", "nIterNoChange"):
        assert back.getOrDefault(p) == est.getOrDefault(p), p
    assert back.coefficients == model.coefficients
    # the params change the model: defaults give another one
    assert SGDLogisticRegression(maxIter=30, stepSize=0.05).fit(logistic_df).coefficients != model.coefficients


def test_rdd_api_takes_an_optimizer_and_defaults_to_mllibs_rule(sc):
    from sparkgd.rdd import LinearRegressionWithSGD

    x, y = make_problem("regression", n=300)
    rdd = sc.parallelize([(float(b), a) for a, b in zip(x, y)], 2)
    default = LinearRegressionWithSGD.train(rdd, iterations=20, step=0.1)
    sgd = LinearRegressionWithSGD.train(rdd, iterations=20, step=0.1, optimizer="sgd")
    adam = LinearRegressionWithSGD.train(rdd, iterations=20, step=0.1, optimizer="adam")
    engine = run_minibatch_sgd(rdd, LeastSquaresGradient(), SimpleUpdater(), step_size=0.1, num_iterations=20,
                               optimizer=make_optimizer("adam"))
    assert default.weights == sgd.weights and adam.weights != default.weights
    assert adam.weights.toArray().tobytes() == engine.weights.tobytes()
    with pytest.raises(ValueError, match="miniBatchFraction"):
        LinearRegressionWithSGD.train(rdd, miniBatchFraction=0.5, optimizer="lbfgs")


def test_linear_regression_estimator_with_lbfgs_matches_lstsq(spark, least_squares):
    rdd, optimum = least_squares
    df = spark.createDataFrame(rdd.map(lambda r: (r[0], Vectors.dense(r[1]))), ["label", "features"])
    model = SGDLinearRegression(optimizer="lbfgs", maxIter=100, tol=0.0).fit(df)
    np.testing.assert_allclose(np.append(model.coefficients.toArray(), model.intercept), optimum, atol=1e-8)
