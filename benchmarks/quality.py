"""Time to a good model: wall time until the full-data objective is within 1e-3 (relative) of the optimum.

Three problems: a dense regression, a sparse logistic regression and an ill-conditioned regression
(correlated features on scales from 0.01 to 100). The optimum is the closed form (``lstsq``) for
least squares; for the logistic problem the lower of Spark ML's ``LogisticRegression`` (tol 1e-12)
and sparkgd's L-BFGS run for 400 iterations.

Every system is timed as a user meets it, on the same cached input: the number of iterations (epochs
for scikit-learn) it needs is found first, then fits with exactly that many are timed (and checked
to reach the goal). For sparkgd the first such fit builds its blocks (``reuse.release_all()``
before it) and the repeated fit reuses them; Spark ML, MLlib and scikit-learn have no such reuse,
so their two fits do the same work. The iterations needed come from one recorded run: sparkgd's
iterates passed to its callback (MLlib's are those of sparkgd's RDD API, as the parity tests
show), Spark ML's ``objectiveHistory`` of a run to tol 1e-12; scikit-learn's by bisection on
``max_iter``. A system that does not get there within its budget is reported with its gap after
the budget. sparkgd's L-BFGS is also timed to Spark ML's own final objective (to 1e-6 relative)
next to Spark ML's time to the same.
"""

from __future__ import annotations

import time

import numpy as np

GOAL = 1e-3  # relative gap to the optimum
ML_GOAL = 1e-6  # relative gap to Spark ML's final objective, for the L-BFGS comparison
BUDGET = 300  # iterations (sparkgd, Spark ML); scikit-learn: 64 epochs
MLLIB_BUDGET = 100

# sparkgd's settings per problem: (label, estimator params). Chosen once by hand on these problems
# (docs/optimizers.md says how); the table reports each.
SPARKGD = {
    "dense regression": [
        ("sgd (MLlib's rule)", dict(optimizer="sgd", stepSize=1.0)),
        ("nesterov", dict(optimizer="nesterov", stepSize=0.3, stepSchedule="constant")),
        ("sgd f=0.1, constant step, averaged from 10", dict(optimizer="sgd", stepSize=0.5, stepSchedule="constant",
                                                            miniBatchFraction=0.1, averageFrom=10)),
        ("adam", dict(optimizer="adam", stepSize=0.05, stepSchedule="constant")),
        ("lbfgs", dict(optimizer="lbfgs")),
    ],
    "sparse logistic": [
        ("sgd (MLlib's rule)", dict(optimizer="sgd", stepSize=1.0)),
        ("adagrad", dict(optimizer="adagrad", stepSize=0.5, stepSchedule="constant")),
        ("adam", dict(optimizer="adam", stepSize=0.05, stepSchedule="constant")),
        ("lbfgs", dict(optimizer="lbfgs")),
    ],
    "ill-conditioned regression": [
        ("sgd (MLlib's rule)", dict(optimizer="sgd", stepSize=0.1)),
        ("nesterov", dict(optimizer="nesterov", stepSize=0.05, stepSchedule="constant")),
        ("adagrad", dict(optimizer="adagrad", stepSize=0.5, stepSchedule="constant")),
        ("adam", dict(optimizer="adam", stepSize=0.05, stepSchedule="constant")),
        ("lbfgs", dict(optimizer="lbfgs")),
    ],
}


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


class Problem:
    """Data (cached DataFrame, cached RDD of LabeledPoint, numpy copies), objective and optimum."""

    def __init__(self, spark, name, x, y, kind, reg=0.0, partitions=2):
        from pyspark.ml.linalg import Vectors as MLVectors
        from pyspark.mllib.linalg import Vectors as MLlibVectors
        from pyspark.mllib.regression import LabeledPoint

        self.name, self.x, self.y, self.kind, self.reg = name, x, y, kind, reg
        self.sparse = hasattr(x, "tocsr")
        sc = spark.sparkContext
        n = x.shape[0]
        data = [(float(y[i]), self._row(i)) for i in range(n)]
        to_mllib = MLlibVectors.sparse if self.sparse else MLlibVectors.dense
        self.rdd = sc.parallelize([LabeledPoint(lab, to_mllib(*v) if self.sparse else to_mllib(v))
                                   for lab, v in data], partitions).cache()
        self.rdd.count()
        to_ml = MLVectors.sparse if self.sparse else MLVectors.dense
        rows = [(lab, to_ml(*v) if self.sparse else to_ml(v)) for lab, v in data]
        self.df = spark.createDataFrame(rows, ["label", "features"]).repartition(partitions).cache()
        self.df.count()
        self.std = self._std()
        self.optimum = None

    def _row(self, i):
        if self.sparse:
            a, b = self.x.indptr[i], self.x.indptr[i + 1]
            return (self.x.shape[1], self.x.indices[a:b], self.x.data[a:b])
        return self.x[i]

    def _std(self):
        if self.sparse:
            m = np.asarray(self.x.mean(axis=0)).ravel()
            m2 = np.asarray(self.x.multiply(self.x).mean(axis=0)).ravel()
            n = self.x.shape[0]
            return np.sqrt(np.maximum(m2 - m * m, 0.0) * n / (n - 1))
        return self.x.std(axis=0, ddof=1)

    def objective(self, coef, intercept):
        """Mean loss + regParam/2 ||coef * std||^2: Spark ML's objective with standardization (its default)."""
        m = np.asarray(self.x @ coef).ravel() + intercept
        if self.kind == "regression":
            r = m - self.y
            loss = float(0.5 * np.mean(r * r))
        else:
            loss = float(np.mean(np.logaddexp(0.0, m) - self.y * m))
        scaled = coef * self.std
        return loss + 0.5 * self.reg * float(scaled @ scaled)

    def gap(self, coef, intercept, target=None):
        f = self.objective(np.asarray(coef, dtype=float), float(intercept))
        ref = self.optimum if target is None else target
        return (f - ref) / abs(ref)

    def release(self):
        self.rdd.unpersist()
        self.df.unpersist()


def dense_regression(spark, n):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, 50))
    y = x @ rng.uniform(-1, 1, 50) + 0.5 + 0.1 * rng.standard_normal(n)
    return Problem(spark, "dense regression", x, y, "regression")


def ill_conditioned(spark, n):
    rng = np.random.default_rng(8)
    z = rng.standard_normal((n, 20))
    x = (0.9 * z[:, :1] + np.sqrt(1 - 0.81) * z) * 10.0 ** rng.uniform(-2, 2, 20)  # correlation 0.81
    y = x @ (rng.uniform(-1, 1, 20) / x.std(axis=0)) + 1.0 + 0.1 * rng.standard_normal(n)
    return Problem(spark, "ill-conditioned regression", x, y, "regression")


def sparse_logistic(spark, n, d=20_000, nnz=20, reg=1e-3):
    import scipy.sparse as sp

    rng = np.random.default_rng(9)
    cols = np.sort(rng.integers(0, d, size=(n, nnz)), axis=1)
    vals = rng.standard_normal((n, nnz))
    x = sp.csr_matrix((vals.ravel(), cols.ravel(), np.arange(0, n * nnz + 1, nnz)), shape=(n, d))
    x.sum_duplicates()
    margin = np.asarray(x @ rng.standard_normal(d)).ravel()
    y = (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(float)
    return Problem(spark, "sparse logistic", x, y, "logistic", reg=reg)


def first_reaching(gaps, goal):
    """The 1-based index of the first gap <= goal, or None."""
    for i, g in enumerate(gaps, 1):
        if g <= goal:
            return i
    return None


def bisect_iterations(fit_gap, budget, goal):
    """The least k in [1, budget] with fit_gap(k) <= goal (fit_gap decreasing in k), or (None, gap at budget)."""
    g = fit_gap(budget)
    if g > goal:
        return None, g
    lo, hi = 0, budget
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fit_gap(mid) <= goal:
            hi = mid
        else:
            lo = mid
    return hi, goal


def sparkgd_estimator(problem, params, iterations, callback=None):
    from sparkgd.ml import SGDLinearRegression, SGDLogisticRegression

    cls = SGDLinearRegression if problem.kind == "regression" else SGDLogisticRegression
    est = cls(maxIter=iterations, tol=0.0, regParam=problem.reg, **params)
    est._callback = callback
    return est


def spark_ml_estimator(problem, iterations, tol=0.0):
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.regression import LinearRegression

    if problem.kind == "regression":
        return LinearRegression(maxIter=iterations, tol=tol, solver="l-bfgs", regParam=problem.reg)
    return LogisticRegression(maxIter=iterations, tol=tol, regParam=problem.reg)


def run_problem(spark, problem, rows_out, log=print):
    d = problem.x.shape[1]
    scale = np.where(problem.std > 0, 1.0 / np.where(problem.std > 0, problem.std, 1.0), 0.0)  # sparkgd's

    def record_row(system, k, first, repeat, gap, note=""):
        rows_out.append(dict(workload=f"time to quality: {problem.name} {problem.x.shape[0]}x{d}", system=system,
                             iterations=k, first=first, repeat=repeat, gap=gap, note=note))
        log(f"  {system}: k={k} first {first} repeat {repeat} gap {gap} {note}")

    # Spark ML: one run to a tight tolerance; its objective history (in its own units: rescaled by the
    # final model's objective) gives the iterations to each goal, and fits with that maxIter are timed
    final = spark_ml_estimator(problem, BUDGET, tol=1e-12).fit(problem.df)
    ml_final = problem.objective(final.coefficients.toArray(), final.intercept)
    history = np.array(final.summary.objectiveHistory) * (ml_final / final.summary.objectiveHistory[-1])
    if problem.kind == "regression":
        x1 = np.hstack([problem.x, np.ones((problem.x.shape[0], 1))])
        w = np.linalg.lstsq(x1, problem.y, rcond=None)[0]
        problem.optimum = problem.objective(w[:-1], w[-1])
    else:
        ours = sparkgd_estimator(problem, dict(optimizer="lbfgs"), 2 * BUDGET).fit(problem.df)
        problem.optimum = min(ml_final, problem.objective(ours.coefficients.toArray(), ours.intercept))
    log(f"{problem.name}: optimum {problem.optimum:.10g}, Spark ML's final objective {ml_final:.10g}")
    for target, goal, name in ((None, GOAL, "Spark ML L-BFGS"),
                               (ml_final, ML_GOAL, f"Spark ML L-BFGS, to its own final objective ({ML_GOAL:g})")):
        ref = problem.optimum if target is None else target
        k = first_reaching((history[1:] - ref) / abs(ref), goal)
        times = _time_fits(lambda k=k: spark_ml_estimator(problem, k or BUDGET).fit(problem.df),
                           lambda m, k=k, target=target, goal=goal: k is None or problem.gap(
                               m.coefficients.toArray(), m.intercept, target) <= goal * 1.0001)
        record_row(name, k, *times, goal if k else (history[-1] - ref) / abs(ref),
                   "" if k else f"not reached in {BUDGET} iterations")

    # MLlib SGD, full batch, step 1/L of the raw features (the largest safe one): its iterates are
    # sparkgd's RDD API's (the parity tests), whose callback finds the iterations needed
    iterates = []
    _mllib_fit(problem, MLLIB_BUDGET, callback=lambda s: iterates.append(s.weights.copy()))
    gaps = [problem.gap(w[:d], w[d]) for w in iterates]
    k = first_reaching(gaps, GOAL)
    times = _time_fits(lambda: _mllib_fit(problem, k or MLLIB_BUDGET))
    record_row("MLlib SGD (step 1/L, f=1.0)", k, *times, GOAL if k else gaps[-1],
               "" if k else f"not reached in {MLLIB_BUDGET} iterations")

    # scikit-learn SGD, one process, as its docs recommend (scaled features for the regressions)
    k, gap = bisect_iterations(lambda e: _sklearn_gap(problem, e), 64, GOAL)
    times = _time_fits(lambda: _sklearn_fit(problem, k or 64))
    record_row("scikit-learn SGD (1 process)", k, *times, gap, "epochs" if k else "not reached in 64 epochs")

    # sparkgd: one recorded run per optimizer, then timed fits with exactly the iterations needed
    for label, params in SPARKGD[problem.name]:
        _sparkgd_rows(problem, label, params, scale, ml_final, record_row)


def _sparkgd_rows(problem, label, params, scale, ml_final, record_row):
    from sparkgd.engine import reuse

    d = problem.x.shape[1]
    iterates = []

    def keep(state):
        w = state.average if state.average is not None else state.weights
        iterates.append(w.copy())

    sparkgd_estimator(problem, params, BUDGET, keep).fit(problem.df)
    targets = [(None, GOAL)] + ([(ml_final, ML_GOAL)] if params["optimizer"] == "lbfgs" else [])
    for target, goal in targets:
        gaps = [problem.gap(w[:d] * scale, w[d], target) for w in iterates]
        k = first_reaching(gaps, goal)

        def fit(k=k):
            return sparkgd_estimator(problem, params, k or BUDGET).fit(problem.df)

        def reached(m, goal=goal, target=target, k=k):
            return k is None or problem.gap(m.coefficients.toArray(), m.intercept, target) <= goal * 1.0001

        reuse.release_all()
        times = _time_fits(fit, reached)
        name = f"sparkgd {label}" + ("" if target is None else f", to Spark ML's final objective ({goal:g})")
        record_row(name, k, *times, goal if k else gaps[-1], "" if k else f"not reached in {BUDGET} iterations")


def _time_fits(fit, check=None):
    first, model = timed(fit)
    repeat, again = timed(fit)
    if check is not None:
        assert check(model) and check(again), "the timed fit did not reach the goal its recorded run reached"
    return round(first, 3), round(repeat, 3)


def _mllib_step(problem):
    x = problem.x
    n = x.shape[0]
    if problem.sparse:
        from scipy.sparse.linalg import eigsh

        top = float(eigsh((x.T @ x) / n, k=1, return_eigenvectors=False)[0])
    else:
        x1 = np.hstack([x, np.ones((n, 1))])
        top = float(np.linalg.eigvalsh(x1.T @ x1 / n)[-1])
    if problem.kind == "logistic":
        top /= 4.0
    return min(1.0, 1.0 / (top + problem.reg))


def _mllib_fit(problem, k, callback=None):
    """MLlib's trainer; with ``callback``, sparkgd's RDD API on the same settings (the same iterates)."""
    from pyspark.mllib.classification import LogisticRegressionWithSGD
    from pyspark.mllib.regression import LinearRegressionWithSGD

    from sparkgd import rdd as ours
    from sparkgd.core.gradients import LeastSquaresGradient, LogisticGradient

    step = _mllib_step(problem)
    logistic = problem.kind == "logistic"
    if callback is not None:
        model_class = ours.LogisticRegressionModel if logistic else ours.LinearRegressionModel
        return ours._train(model_class, problem.rdd, LogisticGradient() if logistic else LeastSquaresGradient(),
                           "l2" if logistic else None, iterations=k, step=step, miniBatchFraction=1.0,
                           initialWeights=None, regParam=problem.reg, intercept=True, validateData=True,
                           convergenceTol=0.0, binary=logistic, callback=callback)
    if not logistic:
        return LinearRegressionWithSGD.train(problem.rdd, iterations=k, step=step, intercept=True, convergenceTol=0.0)
    return LogisticRegressionWithSGD.train(problem.rdd, iterations=k, step=step, regParam=problem.reg, regType="l2",
                                           intercept=True, convergenceTol=0.0)


def _sklearn_fit(problem, epochs):
    import warnings

    from sklearn.linear_model import SGDClassifier, SGDRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if problem.kind == "regression":
            sgd = SGDRegressor(penalty=None, tol=None, max_iter=epochs, random_state=0)
        else:
            sgd = SGDClassifier(loss="log_loss", alpha=problem.reg, tol=None, max_iter=epochs, random_state=0)
        return make_pipeline(StandardScaler(with_mean=not problem.sparse), sgd).fit(problem.x, problem.y)


def _sklearn_gap(problem, epochs):
    model = _sklearn_fit(problem, epochs)
    scaler, sgd = model[0], model[-1]
    coef = sgd.coef_.ravel() / scaler.scale_
    shift = 0.0 if scaler.mean_ is None else float(coef @ scaler.mean_)
    return problem.gap(coef, float(np.ravel(sgd.intercept_)[0]) - shift)


def quality_workload(spark, scale, rows_out, problems=("dense", "sparse", "ill")):
    makers = {"dense": (dense_regression, 400_000), "sparse": (sparse_logistic, 200_000),
              "ill": (ill_conditioned, 200_000)}
    for make, n in (makers[p] for p in problems):
        problem = make(spark, max(int(n * scale), 1000))
        try:
            run_problem(spark, problem, rows_out)
        finally:
            problem.release()


def quality_table(rows):
    """The markdown table of docs/benchmarks.md#time-to-quality."""
    out = ["| problem | system | iterations | first fit s | repeated fit s | first / repeated vs Spark ML |",
           "|---|---|---:|---:|---:|---:|"]
    ml = {r["workload"]: r for r in rows if r["system"] == "Spark ML L-BFGS"}
    ml6 = {r["workload"]: r for r in rows if r["system"].startswith("Spark ML L-BFGS, to its own")}
    for r in rows:
        base = (ml6 if "final objective" in r["system"] else ml)[r["workload"]]
        ratio = (f"{r['first'] / base['first']:.2f}x / {r['repeat'] / base['repeat']:.2f}x" if r["iterations"]
                 else r["note"])
        out.append(f"| {r['workload'].replace('time to quality: ', '')} | {r['system']} | {r['iterations'] or '—'} | "
                   f"{r['first']:.2f} | {r['repeat']:.2f} | {ratio} |")
    return "\n".join(out)
