"""The Spark Connect side of ``make bench``: run by benchmarks/bench.py in its own process.

Builds n x d dense rows on the server (2 partitions, cached), then times sparkgd's
``SGDLinearRegression`` fits of 2 and 2 + k iterations, in alternating order; the per-iteration time is
the difference over k (both fits build the blocks, so the build cancels). Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
import time


def main(remote: str, n: int, d: int, k: int, fraction: float) -> None:
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from sparkgd.ml import SGDLinearRegression

    spark = SparkSession.builder.remote(remote).getOrCreate()
    cols = [F.randn(seed=j).alias(f"x{j}") for j in range(d)]
    df = spark.range(n, numPartitions=2).select(*cols)
    label = F.aggregate(F.array(*[F.col(f"x{j}") * ((j % 5) - 2) for j in range(d)]), F.lit(0.0), lambda a, b: a + b)
    df = VectorAssembler(inputCols=[f"x{j}" for j in range(d)], outputCol="features").transform(
        df.withColumn("label", label)).select("label", "features").cache()
    df.count()

    def fit(iterations):
        t = time.perf_counter()
        SGDLinearRegression(maxIter=iterations, tol=0.0, miniBatchFraction=fraction).fit(df)
        return time.perf_counter() - t

    fit(1)  # warm up the server's Python workers
    short, long = [], []
    for r in range(2):
        for iterations in ((2, 2 + k) if r % 2 == 0 else (2 + k, 2)):
            (short if iterations == 2 else long).append(fit(iterations))
    per_iter = (sorted(long)[len(long) // 2] - sorted(short)[len(short) // 2]) / k
    print(json.dumps({"per_iter": per_iter, "first": min(short) - 2 * per_iter, "total": min(long)}))


def _dense_rows(spark, n: int, d: int, partitions: int):
    """The rows of ``bench.dense_workload`` (the same generator, partition by partition), built on the server."""
    import numpy as np
    import pyarrow as pa
    from pyspark.ml.feature import VectorAssembler

    w_true = np.random.default_rng(0).uniform(-1, 1, d)
    sizes = [len(c) for c in np.array_split(np.arange(n), partitions)]

    def generate(batches):
        for b in batches:
            for p in b.column("id").to_pylist():
                rng = np.random.default_rng([0, p])
                xp = rng.standard_normal((sizes[p], d))
                yp = xp @ w_true + 0.1 * rng.standard_normal(sizes[p])
                yield pa.RecordBatch.from_pydict({"label": yp, **{f"x{j}": xp[:, j] for j in range(d)}})

    schema = ", ".join(["label double"] + [f"x{j} double" for j in range(d)])
    raw = spark.range(partitions, numPartitions=partitions).mapInArrow(generate, schema)
    return VectorAssembler(inputCols=[f"x{j}" for j in range(d)], outputCol="features").transform(raw) \
        .select("label", "features")


def deployment(remote: str, n: int, d: int, partitions: int, k: int, out: str) -> None:
    """The deployments bench under a Connect server on its cluster: sparkgd-df with the loop in a task and with
    one Spark job per iteration, timed as ``bench.time_systems`` times (cold first call; then rounds in
    alternating order of an untimed 1-iteration call, k and 5k iterations; s/iter = (T(5k) - T(k)) / 4k)."""
    from pyspark.sql import SparkSession

    from sparkgd.engine import remote as engine_remote
    from sparkgd.engine import reuse
    from sparkgd.ml import SGDLinearRegression

    builds = []
    real = engine_remote.RemoteBlocks.__init__

    def counting(self, *args, **kwargs):
        builds.append(1)
        real(self, *args, **kwargs)

    engine_remote.RemoteBlocks.__init__ = counting
    spark = SparkSession.builder.remote(remote).getOrCreate()
    df = _dense_rows(spark, n, d, partitions).cache()
    df.count()
    fits = []
    systems = {"sparkgd-df under Spark Connect": "true",
               "sparkgd-df under Spark Connect, one job per iteration": "false"}
    rows = []
    for f in (1.0, 0.1):
        def fit(iterations, mode, f=f):
            spark.conf.set("spark.sparkgd.residentTasks", mode)
            t = time.perf_counter()
            SGDLinearRegression(maxIter=iterations, stepSize=0.5, miniBatchFraction=f, tol=0.0, fitIntercept=False,
                                standardization=False).fit(df)
            fits.append([f, mode, iterations, round(time.perf_counter() - t, 3), len(builds)])
            print("fit", fits[-1], file=sys.stderr, flush=True)
            return time.perf_counter() - t

        first, pers, setups, totals = {}, {s: [] for s in systems}, {s: [] for s in systems}, {}
        for name, mode in systems.items():
            reuse.release_all()
            first[name] = fit(1, mode)
        for r in range(2):
            for name, mode in (list(systems.items()) if r % 2 == 0 else list(reversed(systems.items()))):
                fit(1, mode)
                short, long = fit(k, mode), fit(5 * k, mode)
                pers[name].append((long - short) / (4 * k))
                setups[name].append(short - k * pers[name][-1])
                totals[name] = long
        for name in systems:
            rows.append(dict(workload=f"deployment: Spark Connect {n}x{d} f={f}", system=name,
                             per_iter=sum(pers[name]) / 2, per_iter_check=None, setup=sum(setups[name]) / 2,
                             total=totals[name], first=first[name], loss=None))
    with open(out, "w") as fh:
        json.dump(rows, fh)
    with open(out + ".fits.json", "w") as fh:  # each fit: fraction, resident tasks, iterations, seconds, builds so far
        json.dump(fits, fh)


if __name__ == "__main__":
    if sys.argv[1] == "deployment":
        deployment(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7])
    else:
        main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
