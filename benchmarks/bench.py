"""sparkgd against its peers, in one run, on the same data: ``make bench [ARGS="--scale 0.1"]``.

Systems: pyspark.mllib's JVM SGD trainer, sparkgd's RDD and DataFrame APIs, Spark ML's L-BFGS
trainer, scikit-learn's SGD on one process, a plain numpy mini-batch loop on one process (the
floor without Spark), and an empty 2-task Python job (Spark's fixed cost per iteration).

Per-iteration seconds: for sparkgd, the median time between iterations measured inside the loop;
for MLlib and Spark ML (whose loops cannot be observed) ``(T(k + 1) - T(1)) / k`` from two
end-to-end runs after a warm-up, so one-time setup cancels out. Setup is the end-to-end time
minus the iterations. Ratios are to MLlib from the same run. Output: a markdown table and a JSON file.
"""

from __future__ import annotations

import argparse
import json
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


def spark_trainer(train, k):
    """End-to-end seconds at 1 and k + 1 iterations -> (per iteration, setup, total, model)."""
    train(1)  # warm-up: JIT, Python workers, imports
    t1, _ = timed(lambda: train(1))
    tk, model = timed(lambda: train(k + 1))
    per = max((tk - t1) / k, 0.0)
    return per, max(t1 - per, 0.0), tk, model


class IterationClock:
    """The loop's callback: the median seconds between consecutive iterations."""

    def __init__(self):
        self.stamps = []

    def __call__(self, state):
        self.stamps.append(time.perf_counter())

    def median(self):
        return float(np.median(np.diff(self.stamps))) if len(self.stamps) > 2 else None


def sparkgd_trainer(train, k):
    """Like :func:`spark_trainer`, but seconds per iteration are the median measured inside the loop."""
    per, setup, total, model = spark_trainer(lambda it: train(it, None), k)
    clock = IterationClock()
    total, model = timed(lambda: train(k + 1, clock))
    per = clock.median() or per
    return per, max(total - per * (k + 1), 0.0), total, model


def rdd_train(trainer, rdd, callback, **kw):
    """``trainer.train(rdd, **kw)`` with the loop's callback (the RDD API keeps it private)."""
    import sparkgd.rdd as api

    if callback is None:
        return trainer.train(rdd, **kw)
    kinds = {"LinearRegressionWithSGD": (api.LinearRegressionModel, "squared", False),
             "LogisticRegressionWithSGD": (api.LogisticRegressionModel, "logistic", True)}
    model_class, loss, binary = kinds[trainer.__name__]
    from sparkgd.gradients import get_gradient

    return api._train(model_class, rdd, get_gradient(loss), kw.pop("regType", None), initialWeights=None,
                      intercept=False, validateData=True, binary=binary, callback=callback,
                      regParam=kw.pop("regParam", 0.0), **kw)


def df_fit(estimator, df, callback):
    estimator._callback = callback
    return estimator.fit(df)


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


def dense_workload(spark, n, d, partitions, fractions, k, rows_out):
    from pyspark.ml.linalg import Vectors
    from pyspark.ml.regression import LinearRegression
    from pyspark.mllib.regression import LabeledPoint
    from pyspark.mllib.regression import LinearRegressionWithSGD as MLlibLinear
    from sklearn.linear_model import SGDRegressor

    from sparkgd.ml import SGDLinearRegression
    from sparkgd.rdd import LinearRegressionWithSGD

    sc = spark.sparkContext
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d))
    w_true = rng.uniform(-1, 1, d)
    y = x @ w_true + 0.1 * rng.standard_normal(n)
    chunks = np.array_split(np.arange(n), partitions)

    def rows(p, _):
        for i in chunks[p]:
            yield LabeledPoint(float(y[i]), x[i])

    rdd = sc.parallelize(range(partitions), partitions).mapPartitionsWithIndex(rows).cache()
    rdd.count()
    df = spark.createDataFrame(rdd.map(lambda p: (p.label, Vectors.dense(p.features.toArray()))),
                               ["label", "features"]).cache()
    df.count()
    empty = empty_job(sc, partitions, k)
    memory_row(sc, rdd, n, d, rows_out)
    step = 0.5
    for f in fractions:
        label = f"dense {n}x{d} f={f}"
        results = {}
        results["mllib"] = spark_trainer(lambda it, f=f: MLlibLinear.train(
            rdd, iterations=it, step=step, miniBatchFraction=f, convergenceTol=0.0), k)
        results["sparkgd-rdd"] = sparkgd_trainer(lambda it, cb, f=f: rdd_train(
            LinearRegressionWithSGD, rdd, cb, iterations=it, step=step, miniBatchFraction=f, convergenceTol=0.0), k)
        results["sparkgd-df"] = sparkgd_trainer(lambda it, cb, f=f: df_fit(SGDLinearRegression(
            maxIter=it, stepSize=step, miniBatchFraction=f, tol=0.0, fitIntercept=False,
            standardization=False), df, cb), k)
        for name, (per, setup, total, model) in results.items():
            w = model.weights.toArray() if hasattr(model, "weights") else model.coefficients.toArray()
            rows_out.append(dict(workload=label, system=name, per_iter=per, setup=setup, total=total,
                                 loss=squared_loss(x, y, w)))
        if f == fractions[0]:
            per, setup, total, model = spark_trainer(lambda it: LinearRegression(
                maxIter=it, regParam=0.0, solver="l-bfgs", tol=0.0, standardization=False).fit(df), k)
            rows_out.append(dict(workload=label, system="spark-ml-lbfgs", per_iter=per, setup=setup, total=total,
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
    for name, trainer in [("mllib", MLlibLogistic), ("sparkgd-rdd", LogisticRegressionWithSGD)]:
        if name == "mllib":
            per, setup, total, model = spark_trainer(lambda it, tr=trainer: tr.train(rdd, iterations=it, **kw), k)
        else:
            per, setup, total, model = sparkgd_trainer(
                lambda it, cb, tr=trainer: rdd_train(tr, rdd, cb, iterations=it, **kw), k)
        rows_out.append(dict(workload=label, system=name, per_iter=per, setup=setup, total=total,
                             loss=logistic_loss(csr, y, model.weights.toArray())))
    rows_out.append(dict(workload=label, system="empty Spark job", per_iter=empty_job(sc, partitions, k),
                         setup=0.0, total=None, loss=None))
    rdd.unpersist()


def table(rows):
    mllib = {r["workload"]: r for r in rows if r["system"] == "mllib"}
    out = ["| workload | system | s/iter | setup s | total s | final loss | iter vs MLlib | total vs MLlib |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m = mllib.get(r["workload"])

        def ratio(key, r=r, m=m):
            return f"{r[key] / m[key]:.2f}x" if m and r.get(key) and m.get(key) else ""

        def num(v, fmt):
            return "" if v is None else format(v, fmt)

        out.append(f"| {r['workload']} | {r['system']} | {num(r['per_iter'], '.4f')} | {num(r['setup'], '.2f')} | "
                   f"{num(r['total'], '.2f')} | {num(r['loss'], '.5f')} | {ratio('per_iter')} | {ratio('total')} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every row count (0.05 runs in ~2 min)")
    p.add_argument("--iterations", type=int, default=10, help="iterations k per timed run (default 10)")
    p.add_argument("--workloads", default="dense,sparse,scaling", help="comma-separated: dense,sparse,scaling")
    p.add_argument("--json", default="benchmarks/results.json", help="where to write the results")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").appName("sparkgd-bench")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "8g").getOrCreate())
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
                dense_workload(spark, int(n * args.scale), 50, 2, [0.1], args.iterations, sub)
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
