"""``jobs/train_linear.py`` under Spark Connect (``--remote``): DataFrame operations only.

Without a SparkContext the job reads its input with Spark's own readers (``libsvm``, ``csv`` with a
header, ``parquet``), so a bad value fails with Spark's message rather than the file and line the
classic job names; builds the synthetic data on the client with the classic job's generator;
splits with ``DataFrame.randomSplit``; trains with the DataFrame API; and takes the metrics from the
model's ``evaluate``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkgd.job.config import REGRESSION_LOSSES, JobConfig
from sparkgd.job.datasets import partition_arrays, partition_sizes, true_model
from sparkgd.job.estimator import estimator_of


def load(spark: SparkSession, cfg: JobConfig) -> tuple[DataFrame, list[str], dict[str, Any] | None]:
    """``(label, features)`` rows, the feature names, and the true model for synthetic data."""
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.linalg import Vectors

    if cfg.input is None:
        k = (cfg.num_classes or 3) if cfg.loss == "multinomial" else None
        w, b = true_model(cfg.features, cfg.seed, k)
        parts = cfg.partitions or 2
        sizes = partition_sizes(cfg.rows, parts)
        rows = []
        for p in range(parts):
            x, y = partition_arrays(p, sizes[p], w, b, seed=cfg.seed, loss=cfg.loss, noise=0.1, num_classes=k or 3)
            rows += [(float(y[i]), Vectors.dense(x[i])) for i in range(len(y))]
        df = spark.createDataFrame(rows, ["label", "features"]).repartition(parts)
        truth = {"weights": w.tolist(), "intercept": b.tolist() if isinstance(b, np.ndarray) else b}
        return df, [f"x{j}" for j in range(cfg.features)], truth
    if cfg.format == "libsvm":
        df = spark.read.format("libsvm").load(cfg.input)
        names = [f"x{j}" for j in range(df.first()["features"].size)]
    else:
        raw = spark.read.option("header", True).option("inferSchema", True).csv(cfg.input) if cfg.format == "csv" \
            else spark.read.parquet(cfg.input)
        if cfg.label_col not in raw.columns:
            raise ValueError(f"--label-col {cfg.label_col!r} is not a column of {cfg.input} ({raw.columns})")
        names = cfg.feature_cols or [c for c in raw.columns if c != cfg.label_col]
        df = VectorAssembler(inputCols=names, outputCol="__sparkgd_features").transform(raw).select(
            F.col(cfg.label_col).cast("double").alias("label"), F.col("__sparkgd_features").alias("features"))
    if cfg.partitions:
        df = df.repartition(cfg.partitions)
    return df, names, None


def metrics_of(model: Any, df: DataFrame, loss: str) -> dict[str, Any]:
    """RMSE, MAE and r2 for regression; accuracy (and areaUnderROC for two classes) otherwise."""
    s = model.evaluate(df)
    rows = df.count()
    if loss in REGRESSION_LOSSES:
        return {"rows": rows, "rmse": s.rootMeanSquaredError, "mae": s.meanAbsoluteError, "r2": s.r2}
    out = {"rows": rows, "accuracy": s.accuracy, "log_loss": None}
    if loss != "multinomial":
        out["areaUnderROC"] = s.areaUnderROC
    return out


def run(spark: SparkSession, cfg: JobConfig, progress: Any) -> tuple[Any, float, tuple, list[str], dict | None]:
    """Train and evaluate under Connect: ``(model, seconds, (train metrics, test metrics), feature names,
    true model)``, the metrics as the classic job's."""
    df, names, truth = load(spark, cfg)
    train, test = df.randomSplit([1.0 - cfg.test_fraction, cfg.test_fraction], seed=cfg.seed) \
        if cfg.test_fraction > 0 else (df, None)
    train, test = train.cache(), test.cache() if test is not None else None
    est = estimator_of(cfg, progress)
    start = progress.start = time.perf_counter()  # one clock: the progress lines' elapsed and the summary's
    model = est.fit(train)
    seconds = time.perf_counter() - start
    scores = (metrics_of(model, train, cfg.loss), metrics_of(model, test, cfg.loss) if test is not None else None)
    train.unpersist()
    if test is not None:
        test.unpersist()
    return model, seconds, scores, names, truth
