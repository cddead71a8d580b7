"""sparkgd against its peers, in one run, on the same data: ``make bench [ARGS="--scale 0.1"]``.

Systems: pyspark.mllib's JVM SGD trainer, sparkgd's RDD and DataFrame APIs, Spark ML's L-BFGS
trainer, scikit-learn's SGD on one process, a plain numpy mini-batch loop on one process (the
floor without Spark), and an empty 2-task Python job (Spark's fixed cost per iteration).

Per-iteration seconds: for MLlib, the median time between the submissions of consecutive
iterations' Spark stages (Spark's status tracker); for sparkgd, whose resident tasks serve all
iterations in one job, the median time between consecutive iterations' ends on the driver (the
``iteration t done`` records of the ``sparkgd`` logger). Both are the period of the loop,
driver update included. For Spark ML's L-BFGS (several jobs per iteration):
``(T(k + 1) - T(1)) / k`` from two end-to-end runs after a warm-up. Setup is the end-to-end
time minus the iterations. "sparkgd-rdd, one job per iteration" has resident tasks switched
off. "First call" is the cold end-to-end time of the first (1-iteration) call on the cached
input; sparkgd builds its blocks then and later calls on the same input reuse them. Ratios
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


def spark_trainer(sc, train, k, marker=None):
    """End-to-end runs -> (seconds per iteration, setup, total, model, first call).

    The first call (1 iteration) is the cold one: for sparkgd on a cached input it also builds
    the blocks, which later calls on the same input reuse. Then k + 1 iterations (and, without
    ``marker``, 1 iteration before them).

    With ``marker`` (a text in the name of the stage each iteration runs), seconds per iteration
    are the median time between the submissions of consecutive iterations' stages, read from
    Spark's status tracker; with ``marker=SPARKGD_ITERATION``, between the ends of consecutive
    iterations on the driver. Without it (Spark ML's L-BFGS, several jobs per iteration),
    ``(T(k + 1) - T(1)) / k``.
    """
    from sparkgd import reuse

    reuse.release_all()  # a cold first call: sparkgd builds its blocks again
    first, _ = timed(lambda: train(1))  # also warms up: JIT, Python workers, imports
    t1 = None if marker else timed(lambda: train(1))[0]
    group = f"bench-{time.perf_counter_ns()}"
    sc.setJobGroup(group, group)
    ends = IterationEnds()
    log = logging.getLogger("sparkgd")
    level = log.level
    log.addHandler(ends)
    log.setLevel(logging.DEBUG)
    try:
        tk, model = timed(lambda: train(k + 1))
    finally:
        sc._jsc.clearJobGroup()
        log.removeHandler(ends)
        log.setLevel(level)
    if marker == SPARKGD_ITERATION:
        per = float(np.median(np.diff(ends.times))) if len(ends.times) > 2 else None
    else:
        per = iteration_seconds(sc, group, marker) if marker else None
    if per is None:
        per = max((tk - (first if t1 is None else t1)) / k, 0.0)
    return per, max(tk - per * (k + 1), 0.0), tk, model, first


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
    rng = np.random.default_rng(0)
    w = np.zeros(x.shape[1])
    times = []
    for t in range(1, k + 1):
        start = time.perf_counter()
        idx = np.flatnonzero(rng.random(x.shape[0]) < fraction) if fraction < 1 else slice(None)
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
    """Bytes sparkgd holds for the training data: JVM cache of the blocks plus the local store."""
    from pyspark import SparkFiles

    from sparkgd.blocks import BlockedData

    blocks = BlockedData(rdd)
    try:
        mem = disk = 0
        for info in sc._jsc.sc().getRDDStorageInfo():
            if info.id() == blocks.rdd.id():
                mem, disk = info.memSize(), info.diskSize()
        store = os.path.join(SparkFiles.getRootDirectory(), blocks.store_id)
        stored = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(store) for f in fs)
    finally:
        blocks.unpersist()
    raw = n * (d + 1) * 8
    rows_out.append(dict(workload=f"memory {n}x{d}", system="sparkgd blocks", per_iter=None, setup=None, total=None,
                         loss=None, jvm_memory_bytes=mem, jvm_disk_bytes=disk, store_bytes=stored, raw_bytes=raw,
                         in_memory_ratio=(mem + stored) / raw))
    print(f"memory {n}x{d}: JVM cache {mem / 1e6:.1f} MB in memory, {disk / 1e6:.1f} MB on disk; "
          f"local store (memory-mapped) {stored / 1e6:.1f} MB; raw {raw / 1e6:.1f} MB; "
          f"in memory {(mem + stored) / raw:.2f}x raw")


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
        results = {}
        results["mllib"] = spark_trainer(sc, lambda it, f=f: MLlibLinear.train(
            rdd, iterations=it, step=step, miniBatchFraction=f, convergenceTol=0.0), k, MLLIB_ITERATION)
        def sparkgd_rdd(it, f=f):
            return LinearRegressionWithSGD.train(rdd, iterations=it, step=step, miniBatchFraction=f,
                                                 convergenceTol=0.0)

        results["sparkgd-rdd"] = spark_trainer(sc, sparkgd_rdd, k, SPARKGD_ITERATION)
        if full:
            results["sparkgd-rdd, one job per iteration"] = spark_trainer(sc, per_job(sparkgd_rdd), k,
                                                                          SPARKGD_ITERATION)
            results["sparkgd-df"] = spark_trainer(sc, lambda it, f=f: SGDLinearRegression(
                maxIter=it, stepSize=step, miniBatchFraction=f, tol=0.0, fitIntercept=False,
                standardization=False).fit(df), k, SPARKGD_ITERATION)
        for name, (per, setup, total, model, first) in results.items():
            w = model.weights.toArray() if hasattr(model, "weights") else model.coefficients.toArray()
            rows_out.append(dict(workload=label, system=name, per_iter=per, setup=setup, total=total,
                                 first=first, loss=squared_loss(x, y, w)))
        if full and f == fractions[0]:
            per, setup, total, model, first = spark_trainer(sc, lambda it: LinearRegression(
                maxIter=it, regParam=0.0, solver="l-bfgs", tol=0.0, standardization=False).fit(df), k)
            rows_out.append(dict(workload=label, system="spark-ml-lbfgs", per_iter=per, setup=setup, total=total,
                                 first=first, loss=squared_loss(x, y, model.coefficients.toArray(), model.intercept)))
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

    for name, train, marker in [("mllib", trains(MLlibLogistic), MLLIB_ITERATION),
                                ("sparkgd-rdd", trains(LogisticRegressionWithSGD), SPARKGD_ITERATION),
                                ("sparkgd-rdd, one job per iteration", per_job(trains(LogisticRegressionWithSGD)),
                                 SPARKGD_ITERATION)]:
        per, setup, total, model, first = spark_trainer(sc, train, k, marker)
        rows_out.append(dict(workload=label, system=name, per_iter=per, setup=setup, total=total, first=first,
                             loss=logistic_loss(csr, y, model.weights.toArray())))
    rows_out.append(dict(workload=label, system="empty Spark job", per_iter=empty_job(sc, partitions, k),
                         setup=0.0, total=None, loss=None))
    rdd.unpersist()


def table(rows):
    mllib = {r["workload"]: r for r in rows if r["system"] == "mllib"}
    out = ["| workload | system | s/iter | setup s | total s | first call s | final loss | iter vs MLlib "
           "| total vs MLlib | first call vs MLlib |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = mllib.get(r["workload"])

        def ratio(key, r=r, m=m):
            return f"{r[key] / m[key]:.2f}x" if m and r.get(key) and m.get(key) else ""

        def num(v, fmt):
            return "" if v is None else format(v, fmt)

        out.append(f"| {r['workload']} | {r['system']} | {num(r['per_iter'], '.4f')} | {num(r['setup'], '.2f')} | "
                   f"{num(r['total'], '.2f')} | {num(r.get('first'), '.2f')} | {num(r['loss'], '.5f')} | "
                   f"{ratio('per_iter')} | {ratio('total')} | {ratio('first')} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every row count (0.05 runs in ~1 min)")
    p.add_argument("--iterations", type=int, default=10, help="iterations k per timed run (default 10)")
    p.add_argument("--workloads", default="dense,sparse,scaling", help="comma-separated: dense,sparse,scaling")
    p.add_argument("--json", default="benchmarks/results.json", help="where to write the results")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").appName("sparkgd-bench")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "8g")
             .config("spark.python.unix.domain.socket.enabled", "true")  # as conf/spark-defaults.conf
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    rows: list[dict] = []
    work = set(args.workloads.split(","))
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
    finally:
        spark.stop()
    print(table(rows))
    with open(args.json, "w") as f:
        json.dump({"scale": args.scale, "iterations": args.iterations, "results": rows}, f, indent=2)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
