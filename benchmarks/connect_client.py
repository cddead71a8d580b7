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


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
