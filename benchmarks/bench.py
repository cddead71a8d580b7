"""sparkgd against its peers, in one run, on the same data: ``make bench [ARGS="--scale 0.1"]``.

Systems: pyspark.mllib's JVM SGD trainer, sparkgd's RDD and DataFrame APIs, Spark ML's L-BFGS
trainer, scikit-learn's SGD on one process, a plain numpy mini-batch loop on one process (the
floor without Spark), and an empty 2-task Python job (Spark's fixed cost per iteration).

Every Spark system is timed the same way (``time_systems``): a cold 1-iteration first call, then
two rounds (systems in order, then in reverse order) of an untimed 1-iteration call and
end-to-end calls of k and 5k iterations; seconds per iteration are the mean of
(T(5k) - T(k)) / 4k and setup is T(k) minus k iterations. A cross-check column gives the median
iteration period of the 5k run (MLlib: Spark's status tracker; sparkgd: its ``iteration t done``
log records). Every sparkgd system must give MLlib's weights to 1e-9, or the benchmark fails.
"sparkgd-rdd, one job per iteration" has resident tasks switched off. The wide workload runs on a
2-executor ``local-cluster`` and also reports the driver's TCP bytes per iteration
(``traffic.py``); the concurrency workload times ``CrossValidator(parallelism=2)`` against
``parallelism=1`` and two fits from two threads against one after the other, per round. Ratios
are to MLlib from the same run. Output: a markdown table and a JSON file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
import warnings

import numpy as np
from first_call import first_call_table, first_call_workload
from quality import quality_table, quality_workload

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ["PYSPARK_PYTHON"] = sys.executable


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def squared_loss(x, y, w, b=0.0):
    r = x @ w + b - y
    return float(0.5 * np.mean(r * r))


def logistic_loss(x, y, w, b=0.0):
    m = np.asarray(x @ w).ravel() + b
    return float(np.mean(np.logaddexp(0.0, m) - y * m))


class IterationEnds(logging.Handler):
    """Driver times of sparkgd's ``iteration t done`` debug records."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.times = []

    def emit(self, record):
        if record.msg == "iteration %d done":
            self.times.append(record.created)


def time_systems(sc, systems, k, rounds=2):
    """Time every system the same way -> ``{name: (s/iter, setup, total, model, first call, cross-check)}``.

    ``systems`` holds ``(name, train, marker)``; ``train(iterations)`` returns a model. Each
    system's first call (1 iteration) is the cold one (sparkgd builds its blocks then; later calls
    on the same cached input reuse them). Then, in each of ``rounds`` rounds (the systems in order,
    then in reverse order, so that warm-up favours none), each system runs an untimed 1-iteration
    call (so that what the previous system left behind, such as Python workers to start, is not
    timed), then ``k`` and ``5k`` iterations: seconds per iteration are the mean over the rounds of
    ``(T(5k) - T(k)) / 4k``, setup is the mean ``T(k)`` minus ``k`` iterations, the model is the
    last ``5k`` one. The cross-check is the median period of the last ``5k`` run from Spark's status
    tracker (MLlib, ``marker`` in the stage name) or from sparkgd's ``iteration t done`` records.
    """
    from sparkgd.engine import reuse

    first = {}
    for name, train, _ in systems:
        reuse.release_all()
        first[name] = timed(lambda train=train: train(1))[0]
    shorts = {name: [] for name, _, _ in systems}
    pers = {name: [] for name, _, _ in systems}
    out = {}
    for r in range(rounds):
        for name, train, marker in (systems if r % 2 == 0 else list(reversed(systems))):
            train(1)
            short = timed(lambda train=train: train(k))[0]
            group = f"bench-{time.perf_counter_ns()}"
            sc.setJobGroup(group, group)
            ends = IterationEnds()
            log = logging.getLogger("sparkgd")
            level = log.level
            log.addHandler(ends)
            log.setLevel(logging.DEBUG)
            try:
                long, model = timed(lambda train=train: train(5 * k))
            finally:
                sc._jsc.clearJobGroup()
                log.removeHandler(ends)
                log.setLevel(level)
            if marker == SPARKGD_ITERATION:
                check = float(np.median(np.diff(ends.times))) if len(ends.times) > 2 else None
            else:
                check = iteration_seconds(sc, group, marker) if marker else None
            shorts[name].append(short)
            pers[name].append((long - short) / (4 * k))
            per = max(float(np.mean(pers[name])), 0.0)
            total = float(np.mean(shorts[name]))
            out[name] = (per, max(total - per * k, 0.0), total, model, first[name], check)
    return out


def add_rows(rows_out, label, timings, loss_of, **extra):
    for name, (per, setup, total, model, first, check) in timings.items():
        rows_out.append(dict(workload=label, system=name, per_iter=per, per_iter_check=check, setup=setup,
                             total=total, first=first, loss=loss_of(model), **extra))


def weights_of(model):
    return model.weights.toArray() if hasattr(model, "weights") else model.coefficients.toArray()


def assert_parity(label, timings, names):
    """The systems in ``names`` gave MLlib's weights (to 1e-9 of the largest): the benchmark compares like with like."""
    ref = weights_of(timings["mllib"][3])
    for name in names:
        w = weights_of(timings[name][3])
        gap = float(np.max(np.abs(w - ref))) / max(float(np.max(np.abs(ref))), 1e-300)
        assert gap <= 1e-9, f"{label}: {name} differs from MLlib by {gap:.3g} (relative)"


def iteration_seconds(sc, group, marker):
    """Median seconds between the submissions of consecutive stages named like ``marker`` in a job group."""
    tracker = sc._jsc.statusTracker()
    starts = []
    for job in sorted(tracker.getJobIdsForGroup(group)):
        for stage in tracker.getJobInfo(job).stageIds():
            info = tracker.getStageInfo(stage)
            if info is not None and marker in info.name():
                starts.append(info.submissionTime())
                break
    return float(np.median(np.diff(starts))) / 1000 if len(starts) > 2 else None


MLLIB_ITERATION = "GradientDescent.scala"  # MLlib's treeAggregate in runMiniBatchSGD
SPARKGD_ITERATION = "sparkgd iteration"  # timed by the driver's log records (IterationEnds)


def per_job(train):
    """``train`` with sparkgd's resident tasks switched off: one Spark job per iteration."""
    from pyspark.sql import SparkSession

    def run(it):
        conf = SparkSession.getActiveSession().conf
        conf.set("spark.sparkgd.residentTasks", "false")
        try:
            return train(it)
        finally:
            conf.unset("spark.sparkgd.residentTasks")

    return run


def empty_job(sc, partitions, k):
    tiny = sc.parallelize(range(partitions), partitions).cache()
    tiny.count()
    times = [timed(lambda: tiny.mapPartitions(lambda it: [sum(1 for _ in it)]).collect())[0] for _ in range(k)]
    return statistics.median(times)


def numpy_loop(x, y, fraction, k, grad):
    """Mini-batch SGD on one process; rows sampled by geometric gaps, O(fraction n) per iteration as sparkgd's."""
    rng = np.random.default_rng(0)
    n = x.shape[0]
    w = np.zeros(x.shape[1])
    times = []
    for t in range(1, k + 1):
        start = time.perf_counter()
        if fraction < 1:
            gaps = rng.geometric(fraction, size=int(n * fraction * 1.2) + 16)
            idx = np.cumsum(gaps) - 1
            idx = idx[idx < n]
        else:
            idx = slice(None)
        xs, ys = x[idx], y[idx]
        g = grad(xs, ys, w)
        w = w - (1.0 / np.sqrt(t)) * g
        times.append(time.perf_counter() - start)
    return statistics.median(times), w


def cached_size(sc, rdd_id):
    for info in sc._jsc.sc().getRDDStorageInfo():
        if info.id() == rdd_id:
            return info.memSize() + info.diskSize()
    return None


def memory_row(sc, rdd, n, d, rows_out):
    """Bytes Spark holds for sparkgd's blocks of the training data (memory and disk of the cached block RDD)."""
    from sparkgd.engine.blocks import build_blocks

    blocks = build_blocks(rdd)
    try:
        mem = disk = 0
        for info in sc._jsc.sc().getRDDStorageInfo():
            if info.id() == blocks.rdd.id():
                mem, disk = info.memSize(), info.diskSize()
    finally:
        blocks.unpersist()
    raw = n * (d + 1) * 8
    rows_out.append(dict(workload=f"memory {n}x{d}", system="sparkgd blocks", per_iter=None, setup=None, total=None,
                         loss=None, jvm_memory_bytes=mem, jvm_disk_bytes=disk, raw_bytes=raw,
                         in_memory_ratio=mem / raw))
    print(f"memory {n}x{d}: cached blocks {mem / 1e6:.1f} MB in memory, {disk / 1e6:.1f} MB on disk; "
          f"raw {raw / 1e6:.1f} MB; in memory {mem / raw:.2f}x raw")


def dense_workload(spark, n, d, partitions, fractions, k, rows_out, kind="dense"):
    from pyspark.ml.linalg import Vectors
    from pyspark.ml.regression import LinearRegression
    from pyspark.mllib.regression import LabeledPoint
    from pyspark.mllib.regression import LinearRegressionWithSGD as MLlibLinear
    from sklearn.linear_model import SGDRegressor

    from sparkgd.ml import SGDLinearRegression
    from sparkgd.rdd import LinearRegressionWithSGD

    sc = spark.sparkContext
    w_true = np.random.default_rng(0).uniform(-1, 1, d)
    sizes = [len(c) for c in np.array_split(np.arange(n), partitions)]

    def chunk(p):  # partition p's rows, generated where they are needed (no data in the closure)
        rng = np.random.default_rng([0, p])
        xp = rng.standard_normal((sizes[p], d))
        return xp, xp @ w_true + 0.1 * rng.standard_normal(sizes[p])

    def rows(p, _):
        xp, yp = chunk(p)
        for xi, yi in zip(xp, yp):
            yield LabeledPoint(float(yi), xi)

    x, y = (np.concatenate(a) for a in zip(*(chunk(p) for p in range(partitions))))

    rdd = sc.parallelize(range(partitions), partitions).mapPartitionsWithIndex(rows).cache()
    rdd.count()
    full = kind == "dense"  # the scaling rows compare MLlib, sparkgd's RDD API and the empty job only
    df = spark.createDataFrame(rdd.map(lambda p: (p.label, Vectors.dense(p.features.toArray()))),
                               ["label", "features"]).cache() if full else None
    if df is not None:
        df.count()
    empty = empty_job(sc, partitions, k)
    if full:
        memory_row(sc, rdd, n, d, rows_out)
    step = 0.5
    for f in fractions:
        label = f"{kind} {n}x{d} f={f}"
        def sparkgd_rdd(it, f=f):
            return LinearRegressionWithSGD.train(rdd, iterations=it, step=step, miniBatchFraction=f,
                                                 convergenceTol=0.0)

        systems = [("mllib", lambda it, f=f: MLlibLinear.train(
                        rdd, iterations=it, step=step, miniBatchFraction=f, convergenceTol=0.0), MLLIB_ITERATION),
                   ("sparkgd-rdd", sparkgd_rdd, SPARKGD_ITERATION)]
        if full:
            systems += [("sparkgd-rdd, one job per iteration", per_job(sparkgd_rdd), SPARKGD_ITERATION),
                        ("sparkgd-df", lambda it, f=f: SGDLinearRegression(
                            maxIter=it, stepSize=step, miniBatchFraction=f, tol=0.0, fitIntercept=False,
                            standardization=False).fit(df), SPARKGD_ITERATION)]
        timings = time_systems(sc, systems, k)
        assert_parity(label, timings, [name for name, _, _ in systems[1:]])
        add_rows(rows_out, label, timings, lambda m: squared_loss(x, y, weights_of(m)))
        if full and f == fractions[0]:
            # L-BFGS stops at its own tolerance: its row reports the time to convergence and its iterations
            t, model = timed(lambda: LinearRegression(maxIter=100, regParam=0.0, solver="l-bfgs", tol=1e-9,
                                                      standardization=False).fit(df))
            iters = model.summary.totalIterations
            rows_out.append(dict(workload=label, system=f"spark-ml-lbfgs ({iters} iterations to tol 1e-9)",
                                 per_iter=t / max(iters, 1), setup=None, total=t,
                                 loss=squared_loss(x, y, model.coefficients.toArray(), model.intercept)))
            t, sk = timed(lambda: SGDRegressor(max_iter=k, tol=None, alpha=0.0, random_state=0).fit(x, y))
            rows_out.append(dict(workload=label, system="sklearn-sgd (1 process, per epoch)", per_iter=t / k,
                                 setup=0.0, total=t, loss=squared_loss(x, y, sk.coef_, sk.intercept_[0])))
        per, w = numpy_loop(x, y, f, k, lambda xs, ys, w: xs.T @ (xs @ w - ys) / len(ys))
        rows_out.append(dict(workload=label, system="numpy loop (1 process)", per_iter=per, setup=0.0,
                             total=per * k, loss=squared_loss(x, y, w)))
        rows_out.append(dict(workload=label, system="empty Spark job", per_iter=empty, setup=0.0, total=None,
                             loss=None))
    rdd.unpersist()
    if df is not None:
        df.unpersist()


def sparse_workload(spark, n, d, nnz, partitions, fraction, k, rows_out):
    import scipy.sparse as sp
    from pyspark.mllib.classification import LogisticRegressionWithSGD as MLlibLogistic
    from pyspark.mllib.linalg import SparseVector
    from pyspark.mllib.regression import LabeledPoint

    from sparkgd.rdd import LogisticRegressionWithSGD

    sc = spark.sparkContext
    rng = np.random.default_rng(1)
    cols = np.sort(rng.integers(0, d, size=(n, nnz)), axis=1)
    vals = rng.standard_normal((n, nnz))
    w_true = rng.standard_normal(d)
    margin = (vals * w_true[cols]).sum(axis=1)
    y = (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(float)
    chunks = np.array_split(np.arange(n), partitions)

    def rows(p, _):
        for i in chunks[p]:
            idx, first = np.unique(cols[i], return_index=True)
            yield LabeledPoint(float(y[i]), SparseVector(d, idx, vals[i][first]))

    rdd = sc.parallelize(range(partitions), partitions).mapPartitionsWithIndex(rows).cache()
    rdd.count()
    label = f"sparse logistic {n}x{d} nnz={nnz} f={fraction}"
    csr = sp.csr_matrix((vals.ravel(), cols.ravel(), np.arange(0, n * nnz + 1, nnz)), shape=(n, d))
    kw = dict(step=1.0, miniBatchFraction=fraction, regParam=0.0, regType=None, convergenceTol=0.0)
    def trains(trainer):
        return lambda it: trainer.train(rdd, iterations=it, **kw)

    systems = [("mllib", trains(MLlibLogistic), MLLIB_ITERATION),
               ("sparkgd-rdd", trains(LogisticRegressionWithSGD), SPARKGD_ITERATION),
               ("sparkgd-rdd, one job per iteration", per_job(trains(LogisticRegressionWithSGD)), SPARKGD_ITERATION)]
    timings = time_systems(sc, systems, k)
    assert_parity(label, timings, [name for name, _, _ in systems[1:]])
    add_rows(rows_out, label, timings, lambda m: logistic_loss(csr, y, weights_of(m)))
    rows_out.append(dict(workload=label, system="empty Spark job", per_iter=empty_job(sc, partitions, k),
                         setup=0.0, total=None, loss=None))
    rdd.unpersist()


def sparse_chunk(p, rows, d, nnz):
    """Partition ``p``'s rows of the wide sparse problem: sorted unique columns, values, labels."""
    w_true = np.random.default_rng(1).standard_normal(d)
    rng = np.random.default_rng([1, p])
    cols = np.sort(rng.integers(0, d, size=(rows, nnz)), axis=1)
    vals = rng.standard_normal((rows, nnz))
    margin = (vals * w_true[cols]).sum(axis=1)
    return cols, vals, (rng.random(rows) < 1 / (1 + np.exp(-margin))).astype(float)


def driver_bytes(sc, train, k, sparkgd):
    """Driver TCP bytes ``(sent, received)`` per iteration of ``train`` (see ``traffic.py``).

    sparkgd: between the ends of iterations 3 and ``k + 1`` of one call (its resident channel
    closes with the call). MLlib: ``(B(k + 1) - B(2)) / (k - 1)`` over two calls.
    """
    from traffic import DriverTraffic

    meter = DriverTraffic(sc)
    if not sparkgd:
        a = meter.snapshot()
        train(2)
        b = meter.snapshot()
        train(k + 1)
        c = meter.snapshot()
        return tuple(((c[i] - b[i]) - (b[i] - a[i])) / (k - 1) for i in (0, 1))
    marks = {}

    class Marks(logging.Handler):
        def emit(self, record):
            if record.msg == "iteration %d done" and record.args[0] in (3, k + 1):
                marks[record.args[0]] = meter.snapshot()

    log = logging.getLogger("sparkgd")
    handler, level = Marks(logging.DEBUG), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        train(k + 1)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    return tuple((marks[k + 1][i] - marks[3][i]) / (k - 2) for i in (0, 1))


def wide_workload(spark, n, d, nnz, partitions, k, rows_out):
    """Sparse logistic regression with a wide model: MLlib and sparkgd, time and driver bytes per iteration."""
    import scipy.sparse as sp
    from pyspark.mllib.classification import LogisticRegressionWithSGD as MLlibLogistic
    from pyspark.mllib.linalg import SparseVector
    from pyspark.mllib.regression import LabeledPoint

    from sparkgd.rdd import LogisticRegressionWithSGD

    sc = spark.sparkContext
    sizes = [len(c) for c in np.array_split(np.arange(n), partitions)]

    def rows(p, _):
        cols, vals, y = sparse_chunk(p, sizes[p], d, nnz)
        for c, v, label in zip(cols, vals, y):
            idx, first = np.unique(c, return_index=True)
            yield LabeledPoint(float(label), SparseVector(d, idx, v[first]))

    rdd = sc.parallelize(range(partitions), partitions).mapPartitionsWithIndex(rows).cache()
    rdd.count()
    parts = [sparse_chunk(p, sizes[p], d, nnz) for p in range(partitions)]
    cols, vals, y = (np.concatenate(a) for a in zip(*parts))
    csr = sp.csr_matrix((vals.ravel(), cols.ravel(), np.arange(0, n * nnz + 1, nnz)), shape=(n, d))
    label = f"wide sparse logistic {n}x{d} nnz={nnz} P={partitions} ({sc.master})"
    kw = dict(step=1.0, miniBatchFraction=1.0, regParam=0.0, regType=None, convergenceTol=0.0)

    def trains(trainer):
        return lambda it: trainer.train(rdd, iterations=it, **kw)

    systems = [("mllib", trains(MLlibLogistic), MLLIB_ITERATION),
               ("sparkgd-rdd", trains(LogisticRegressionWithSGD), SPARKGD_ITERATION),
               ("sparkgd-rdd, one job per iteration", per_job(trains(LogisticRegressionWithSGD)), SPARKGD_ITERATION)]
    timings = time_systems(sc, systems, k, rounds=1)
    assert_parity(label, timings, [name for name, _, _ in systems[1:]])
    for name, train, marker in systems:
        sent, received = driver_bytes(sc, train, k, marker == SPARKGD_ITERATION)
        per = timings[name][0]
        add_rows(rows_out, label, {name: timings[name]}, lambda m: logistic_loss(csr, y, weights_of(m)),
                 driver_sent=sent, driver_received=received, vector_bytes=8 * d)
        print(f"{label} {name}: {per:.3f} s/iter; driver sent {sent / 1e6:.1f} MB, received "
              f"{received / 1e6:.1f} MB per iteration (one vector: {8 * d / 1e6:.1f} MB)", flush=True)
    rdd.unpersist()


def concurrency_workload(spark, rounds, rows_out):
    """Other work of the application: CrossValidator(parallelism=2) and two fits from two threads.

    Each round times both settings in alternating order; the ratios are per round.
    """
    import threading

    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.linalg import Vectors
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    from sparkgd.ml import SGDLogisticRegression

    rng = np.random.default_rng(2)
    x = rng.normal(size=(4000, 5))
    y = (x @ rng.normal(size=5) + 0.3 * rng.normal(size=4000) > 0).astype(float)
    df = spark.createDataFrame([(float(a), Vectors.dense(b)) for a, b in zip(y, x)], ["label", "features"])
    df = df.repartition(2).cache()
    df.count()
    est = SGDLogisticRegression(maxIter=30, miniBatchFraction=0.5, tol=0.0)
    grid = ParamGridBuilder().addGrid(est.stepSize, [0.5, 1.0]).addGrid(est.regParam, [0.0, 0.01]).build()

    def cv(parallelism):
        return CrossValidator(estimator=est, estimatorParamMaps=grid, evaluator=BinaryClassificationEvaluator(),
                              numFolds=2, parallelism=parallelism, seed=1).fit(df)

    def two_fits(threaded):
        fits = [est.copy({est.stepSize: 0.5}), est.copy({est.stepSize: 1.0})]
        if not threaded:
            return [f.fit(df) for f in fits]
        threads = [threading.Thread(target=f.fit, args=(df,)) for f in fits]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    cv(1)
    two_fits(False)  # warm-up
    for name, a, b in [("CrossValidator 2x2 grid, 2 folds: parallelism=2 vs 1", lambda: cv(2), lambda: cv(1)),
                       ("two fits: two threads vs one after the other", lambda: two_fits(True),
                        lambda: two_fits(False))]:
        ratios, times = [], []
        for r in range(rounds):
            order = [a, b] if r % 2 else [b, a]
            t = {fn: timed(fn)[0] for fn in order}
            ratios.append(t[a] / t[b])
            times.append((t[a], t[b]))
        rows_out.append(dict(workload="concurrency (local[2])", system=name, per_iter=None, setup=None, total=None,
                             loss=None, round_seconds=times, ratios=ratios, worst_ratio=max(ratios)))
        print(f"{name}: ratio per round " + ", ".join(f"{q:.2f}" for q in ratios)
              + " (seconds " + ", ".join(f"{p:.1f}/{q:.1f}" for p, q in times) + ")", flush=True)
    df.unpersist()


def wide_on_local_cluster(args, rows):
    """Run the wide workload in a child process on a 2-executor ``local-cluster`` and add its rows."""
    import subprocess
    import tempfile

    import pyspark

    with tempfile.TemporaryDirectory(prefix="sparkgd-bench-") as tmp:
        out = os.path.join(tmp, "wide.json")
        env = dict(os.environ, SPARK_HOME=os.path.dirname(pyspark.__file__), SPARK_WORKER_DIR=tmp,
                   SPARK_LOCAL_DIRS=tmp)
        cmd = [sys.executable, __file__, "--master", "local-cluster[2,1,1024]", "--workloads", "wide",
               "--scale", str(args.scale), "--iterations", str(args.iterations), "--json", out]
        subprocess.run(cmd, env=env, check=True)
        with open(out) as f:
            rows.extend(json.load(f)["results"])


def wait_for_port(port, server, what, detail=lambda: ""):
    """Wait (120 s at most) until something listens on 127.0.0.1:``port``; raise if ``server`` exits first."""
    import socket

    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start{detail()}") from None
            time.sleep(0.5)


def connect_workload(args, rows):
    """sparkgd-df's per-iteration time under Spark Connect (a local server and a client process) at the dense
    workload's size; its rows sit in the dense table, next to MLlib's in classic mode."""
    import socket
    import subprocess
    import tempfile

    import pyspark

    home = os.path.dirname(pyspark.__file__)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, SPARK_HOME=home, PYTHONPATH=root)
    with tempfile.TemporaryDirectory(prefix="sparkgd-connect-") as tmp, open(os.path.join(tmp, "log"), "w") as log:
        server = subprocess.Popen(
            [os.path.join(home, "bin", "spark-submit"), "--class",
             "org.apache.spark.sql.connect.service.SparkConnectServer", "--master", "local[2]",
             "--conf", "spark.driver.memory=8g", "--conf", "spark.ui.enabled=false",
             "--conf", "spark.python.unix.domain.socket.enabled=true",
             "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
             "--conf", f"spark.connect.grpc.binding.port={port}"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_port(port, server, "the Spark Connect server")
            n = int(400_000 * args.scale)
            for f in (1.0, 0.1):
                out = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "connect_client.py"),
                                      f"sc://127.0.0.1:{port}", str(n), "50", str(args.iterations), str(f)],
                                     env=env, capture_output=True, text=True, check=True)
                got = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(dict(workload=f"dense {n}x50 f={f}", system="sparkgd-df under Spark Connect",
                                 per_iter=got["per_iter"], per_iter_check=None, setup=None, total=got["total"],
                                 first=None, loss=None))
        finally:
            os.killpg(server.pid, 15)
            server.wait(60)


def table(rows):
    mllib = {r["workload"]: r for r in rows if r["system"] == "mllib"}
    out = ["| workload | system | s/iter | s/iter cross-check | setup s | total s (k iter) | first call s "
           "| final loss | driver MB out/in per iter | iter vs MLlib | total vs MLlib | first call vs MLlib |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "ratios" in r:
            continue
        m = mllib.get(r["workload"])

        def ratio(key, r=r, m=m):
            return f"{r[key] / m[key]:.2f}x" if m and r.get(key) and m.get(key) else ""

        def num(v, fmt):
            return "" if v is None else format(v, fmt)

        traffic = (f"{r['driver_sent'] / 1e6:.1f} / {r['driver_received'] / 1e6:.1f}"
                   if r.get("driver_sent") is not None else "")
        out.append(f"| {r['workload']} | {r['system']} | {num(r['per_iter'], '.4f')} | "
                   f"{num(r.get('per_iter_check'), '.4f')} | {num(r['setup'], '.2f')} | "
                   f"{num(r['total'], '.2f')} | {num(r.get('first'), '.2f')} | {num(r['loss'], '.5f')} | {traffic} | "
                   f"{ratio('per_iter')} | {ratio('total')} | {ratio('first')} |")
    concurrency = [r for r in rows if "ratios" in r]
    if concurrency:
        out += ["", "| concurrency (local[2]) | ratio per round | worst | seconds per round |", "|---|---|---:|---|"]
        for r in concurrency:
            out.append(f"| {r['system']} | {', '.join(f'{q:.2f}' for q in r['ratios'])} | {r['worst_ratio']:.2f} | "
                       + ", ".join(f"{p:.1f}/{q:.1f}" for p, q in r["round_seconds"]) + " |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every row count (0.05 runs in ~1 min)")
    p.add_argument("--iterations", type=int, default=10, help="iterations k per timed run (default 10)")
    p.add_argument("--workloads", default="dense,sparse,scaling,wide,concurrency,quality,connect,deployments,first",
                   help="comma-separated: dense,sparse,scaling,wide,concurrency,quality (time to quality),"
                        "first (one cold train per fresh process: first_call.py),"
                        "connect (sparkgd-df under Spark Connect), deployments (a standalone cluster with "
                        "dynamic allocation, encryption, speculation: deployments.py)")
    p.add_argument("--master", default="local[2]", help="Spark master (wide runs on local-cluster[2,1,1024])")
    p.add_argument("--rounds", type=int, default=5, help="rounds of the concurrency workload")
    p.add_argument("--deployments", default="", help="comma-separated names of deployments.DEPLOYMENTS to run "
                   "(default: all; 'Spark Connect' needs 'nothing added', whose MLlib rows it compares with)")
    p.add_argument("--json", default="benchmarks/results.json", help="where to write the results")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    from pyspark.sql import SparkSession

    work = set(args.workloads.split(","))
    rows: list[dict] = []
    quality_rows: list[dict] = []
    first_rows: list[dict] = []
    cluster = args.master.startswith("local-cluster")
    if "wide" in work and not cluster:
        wide_on_local_cluster(args, rows)
    if "connect" in work and not cluster:
        connect_workload(args, rows)
    if "first" in work and not cluster:
        first_call_workload(args, first_rows)
    if "deployments" in work and not cluster:
        from deployments import deployments_workload

        deployments_workload(args, rows)
    spark = (SparkSession.builder.master(args.master).appName("sparkgd-bench")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "8g").config("spark.executor.memory", "1g")
             .config("spark.python.unix.domain.socket.enabled", "true")  # as conf/spark-defaults.conf
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        if "dense" in work:
            dense_workload(spark, int(400_000 * args.scale), 50, 2, [1.0, 0.1, 0.01], args.iterations, rows)
        if "sparse" in work:
            sparse_workload(spark, int(200_000 * args.scale), 100_000, 20, 2, 1.0, args.iterations, rows)
        if "scaling" in work:
            for n in (100_000, 400_000, 1_600_000):
                sub: list[dict] = []
                dense_workload(spark, int(n * args.scale), 50, 2, [0.1], args.iterations, sub, "scaling")
                rows.extend(r for r in sub if r["system"] in ("mllib", "sparkgd-rdd", "empty Spark job"))
        if "wide" in work and cluster:
            for partitions in (8, 32):
                wide_workload(spark, int(200_000 * args.scale), 2 ** 20, 20, partitions, args.iterations, rows)
        if "concurrency" in work and not cluster:
            concurrency_workload(spark, args.rounds, rows)
        if "quality" in work and not cluster:
            quality_workload(spark, args.scale, quality_rows)
    finally:
        spark.stop()
    print(table(rows))
    if quality_rows:
        print("\n" + quality_table(quality_rows))
    if first_rows:
        print("\n" + first_call_table(first_rows))
    with open(args.json, "w") as f:
        json.dump({"scale": args.scale, "iterations": args.iterations, "results": rows,
                   "time_to_quality": quality_rows, "first_call": first_rows}, f, indent=2)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
