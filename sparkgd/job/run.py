"""What ``jobs/train_linear.py`` runs: load, split, train with progress, evaluate, save.

Kept in the library so the job itself only parses options and writes files.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyspark import RDD
from pyspark.sql import SparkSession

from sparkgd import __version__
from sparkgd.core.gradients import HuberGradient, get_gradient
from sparkgd.core.optimizers import Optimizer, make_optimizer
from sparkgd.core.schedules import Schedule, as_schedule, make_schedule
from sparkgd.core.state import SGDState
from sparkgd.engine import _spark
from sparkgd.job import io, remote
from sparkgd.job.config import REGRESSION_LOSSES, JobConfig, label_classes
from sparkgd.job.datasets import synthetic
from sparkgd.job.estimator import estimator_of

log = logging.getLogger("sparkgd.job")

@dataclass
class JobResult:
    model: Any
    metrics: dict[str, Any]
    loss_history: list[float] = field(default_factory=list)


def load(spark: SparkSession, cfg: JobConfig) -> tuple[RDD, list[str], dict[str, Any], dict[str, Any] | None]:
    """Rows ``(label, features)``, feature names, the bad-row report, and the true model if synthetic."""
    if cfg.input is None:
        rows, w, b = synthetic(spark.sparkContext, rows=cfg.rows, num_features=cfg.features,
                               partitions=cfg.partitions or 2, seed=cfg.seed, loss=cfg.loss,
                               num_classes=cfg.num_classes or 3)
        return rows, [f"x{j}" for j in range(cfg.features)], {"skipped": 0, "examples": []}, \
            {"weights": w.tolist(), "intercept": b.tolist() if isinstance(b, np.ndarray) else b}
    rows, names, report = io.read(spark, cfg.format, cfg.input, label_col=cfg.label_col,
                                  feature_cols=cfg.feature_cols, partitions=cfg.partitions,
                                  on_bad_rows=cfg.on_bad_rows, classes=label_classes(cfg))
    if cfg.partitions and rows.getNumPartitions() != cfg.partitions:
        rows = repartition_in_order(rows, cfg.partitions)
    return rows, names, report, None


def repartition_in_order(rows: RDD, n: int) -> RDD:
    """Contiguous ranges of rows in ``n`` partitions, each in its original order.

    A plain ``repartition`` shuffles, and the order of rows inside a partition would then depend
    on the order shuffle blocks arrive, which would change the rows each mini-batch samples.
    """
    total = rows.count()
    indexed = rows.zipWithIndex().map(lambda t: (t[1], t[0]))
    parts = indexed.partitionBy(n, lambda i: min(n - 1, i * n // max(total, 1)))
    return parts.mapPartitions(lambda it: (r for _, r in sorted(it, key=lambda t: t[0])), True)


def split(rows: RDD, test_fraction: float, seed: int) -> tuple[RDD, RDD | None]:
    if test_fraction <= 0:
        return rows, None
    train, test = rows.randomSplit([1.0 - test_fraction, test_fraction], seed=seed)
    return train, test


class Progress:
    """Logs iteration, loss, step, rows sampled, elapsed time and ETA every ``every`` iterations."""

    def __init__(self, total: int, schedule: Any, every: int, start: float | None = None) -> None:
        self.total, self.every = total, every
        self.schedule = None if schedule is None else as_schedule(schedule)  # None: a line search picks the step
        self.start = time.perf_counter() if start is None else start
        self.times: list[float] = []

    def __call__(self, state: SGDState) -> None:
        now = time.perf_counter()
        self.times.append(now)
        t = state.iteration
        if t % self.every and t != self.total and not state.converged:
            return
        elapsed = now - self.start
        # from the end of the first iteration: the block build before it is not iteration time
        eta = (now - self.times[0]) / (len(self.times) - 1) * (self.total - t) if len(self.times) > 1 else math.nan
        loss = state.loss_history[-1] if state.loss_history else math.nan
        step = "line search" if self.schedule is None else f"{self.schedule(t):.4g}"
        log.info("iteration %d/%d  loss %.6g  step %s  rows sampled %d  elapsed %.1fs  ETA %.1fs",
                 t, self.total, loss, step, state.rows_sampled, elapsed, eta)

    def seconds_per_iteration(self) -> float | None:
        if len(self.times) < 2:
            return None
        return float(np.median(np.diff(self.times)))


def optimizer_of(cfg: JobConfig) -> Optimizer:
    return make_optimizer(cfg.optimizer, momentum=cfg.momentum, beta1=cfg.beta1, beta2=cfg.beta2)


def schedule_of(cfg: JobConfig) -> Schedule:
    return make_schedule(cfg.schedule, cfg.step_size, reg_param=cfg.reg_param if cfg.reg_type != "none" else 0.0)


def train(data: RDD, cfg: JobConfig, progress: Progress) -> Any:
    """A model from the RDD API or the DataFrame API, per ``cfg.api``."""
    if cfg.api == "rdd":
        from sparkgd import rdd as api

        model_class = {"squared": api.LinearRegressionModel, "huber": api.LinearRegressionModel,
                       "logistic": api.LogisticRegressionModel, "hinge": api.SVMModel}[cfg.loss]
        gradient = HuberGradient(cfg.epsilon) if cfg.loss == "huber" else get_gradient(cfg.loss)
        return api._train(model_class, data, gradient, None if cfg.reg_type == "none"
                          else cfg.reg_type, iterations=cfg.iterations, step=cfg.step_size,
                          miniBatchFraction=cfg.mini_batch_fraction, initialWeights=None, regParam=cfg.reg_param,
                          intercept=cfg.intercept, validateData=True, convergenceTol=cfg.convergence_tol,
                          binary=cfg.loss not in REGRESSION_LOSSES, callback=progress, checkpointDir=cfg.checkpoint_dir,
                          checkpointInterval=cfg.checkpoint_interval, resume=cfg.resume, seed=cfg.seed,
                          aggregationDepth=cfg.aggregation_depth, optimizer=optimizer_of(cfg),
                          schedule=schedule_of(cfg), averageFrom=cfg.average_from,
                          validationFraction=cfg.validation_fraction, nIterNoChange=cfg.n_iter_no_change)
    return estimator_of(cfg, progress).fit(frame_of(SparkSession.builder.getOrCreate(), data, cfg))


def frame_of(spark: SparkSession, data: RDD, cfg: JobConfig) -> Any:
    """Rows ``(label, features)`` as a DataFrame (``label``, ``features``); with ``cfg.num_classes`` the label
    column declares that many classes, as ``StringIndexer``'s does."""
    from pyspark.ml.linalg import Vectors

    df = spark.createDataFrame(data.map(lambda r: (float(_label(r)), _ml_vector(r, Vectors))), ["label", "features"])
    if cfg.num_classes:
        meta = {"ml_attr": {"type": "nominal", "vals": [str(k) for k in range(cfg.num_classes)]}}
        df = df.withColumn("label", df["label"].alias("label", metadata=meta))
    return df


def _label(r: Any) -> float:
    return r.label if hasattr(r, "label") else r[0]


def _ml_vector(r: Any, vectors: Any) -> Any:
    f = r.features if hasattr(r, "features") else r[1]
    if hasattr(f, "asML"):
        return f.asML()
    return vectors.dense(np.asarray(f, dtype=np.float64))


def _dense(r: Any) -> np.ndarray:
    f = r.features if hasattr(r, "features") else r[1]
    return f.toArray() if hasattr(f, "toArray") else np.asarray(f, dtype=np.float64)


def weights_of(model: Any) -> tuple[np.ndarray, float | np.ndarray]:
    """``(weights, intercept)``; for a multinomial model ``(K x d matrix, K intercepts)``."""
    if getattr(model, "isMultinomial", False):
        return model.coefficientMatrix.toArray(), model.interceptVector.toArray()
    if hasattr(model, "coefficients"):
        return model.coefficients.toArray(), float(model.intercept)
    return model.weights.toArray(), float(model.intercept)


def evaluate(rows: RDD, weights: np.ndarray, intercept: float, loss: str) -> dict[str, float]:
    """RMSE, MAE and r2 for regression; accuracy, areaUnderROC and (logistic) log loss otherwise."""
    w, b = weights, intercept

    def margin(r: Any) -> tuple[float, float]:
        f = r.features if hasattr(r, "features") else r[1]
        if hasattr(f, "indices"):
            m = float(np.dot(np.asarray(f.values), w[np.asarray(f.indices, dtype=np.int64)])) + b
        else:
            m = float(np.dot(_dense(r), w)) + b
        return float(_label(r)), m

    if loss == "multinomial":
        return _evaluate_classes(rows, w, b)
    pairs = rows.map(margin).cache()
    try:
        if loss in REGRESSION_LOSSES:
            n, se, ae, sy, syy = pairs.map(lambda p: (1, (p[0] - p[1]) ** 2, abs(p[0] - p[1]), p[0], p[0] ** 2)) \
                .fold((0, 0.0, 0.0, 0.0, 0.0), lambda a, c: tuple(x + y for x, y in zip(a, c)))
            ss_tot = syy - sy * sy / n if n else 0.0
            return {"rows": n, "rmse": math.sqrt(se / n) if n else math.nan, "mae": ae / n if n else math.nan,
                    "r2": 1.0 - se / ss_tot if ss_tot > 0 else math.nan}
        from pyspark.mllib.evaluation import BinaryClassificationMetrics

        def point(p: tuple[float, float]) -> tuple[int, int, float]:
            y, m = p
            ll = (max(m, 0.0) + math.log1p(math.exp(-abs(m)))) - y * m
            return 1, int((m > 0) == (y > 0.5)), ll

        n, ok, ll = pairs.map(point).fold((0, 0, 0.0), lambda a, c: tuple(x + y for x, y in zip(a, c)))
        with warnings.catch_warnings():  # pyspark.mllib's own use of the deprecated SQLContext: not the user's
            warnings.simplefilter("ignore", FutureWarning)
            auc = BinaryClassificationMetrics(pairs.map(lambda p: (p[1], p[0]))).areaUnderROC if n else math.nan
        out = {"rows": n, "accuracy": ok / n if n else math.nan, "areaUnderROC": auc}
        out["log_loss"] = ll / n if n and loss == "logistic" else None
        return out
    finally:
        pairs.unpersist()


def _evaluate_classes(rows: RDD, w: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Accuracy and mean log loss (cross-entropy) of a multinomial model."""

    def point(r: Any) -> tuple[int, int, float]:
        f = r.features if hasattr(r, "features") else r[1]
        if hasattr(f, "indices"):
            m = w[:, np.asarray(f.indices, dtype=np.int64)] @ np.asarray(f.values) + b
        else:
            m = w @ _dense(r) + b
        y = int(_label(r))
        top = float(m.max())
        lse = top + math.log(float(np.exp(m - top).sum()))
        return 1, int(int(np.argmax(m)) == y), lse - float(m[y]) if 0 <= y < len(m) else math.inf

    n, ok, ll = rows.map(point).fold((0, 0, 0.0), lambda a, c: tuple(x + y for x, y in zip(a, c)))
    return {"rows": n, "accuracy": ok / n if n else math.nan, "log_loss": ll / n if n else math.nan}


def run(spark: SparkSession, cfg: JobConfig) -> JobResult:
    """Load, split, train and evaluate; the metrics hold the resolved configuration too."""
    progress = Progress(cfg.iterations, None if cfg.optimizer == "lbfgs" else schedule_of(cfg), cfg.log_every)
    report = {"skipped": 0, "examples": []}
    if _spark.is_remote():
        model, seconds, (train_m, test_m), names, truth = remote.run(spark, cfg, progress)
    else:
        rows, names, report, truth = load(spark, cfg)
        rows = rows.cache()
        train_rows, test_rows = split(rows, cfg.test_fraction, cfg.seed)
        train_rows = train_rows.cache()
        start = progress.start = time.perf_counter()  # one clock: the progress lines' elapsed and the summary's
        model = train(train_rows, cfg, progress)
        seconds = time.perf_counter() - start
        w, b = weights_of(model)
        train_m = evaluate(train_rows, w, b, cfg.loss)
        test_m = evaluate(test_rows, w, b, cfg.loss) if test_rows is not None else None
        rows.unpersist()
        train_rows.unpersist()
    history = list(model.lossHistory if hasattr(model, "lossHistory") else model.summary.objectiveHistory)
    iterations = model.numIterations if hasattr(model, "numIterations") else model.summary.totalIterations
    if test_m is not None and not test_m["rows"]:
        log.warning("the test split is empty (--test-fraction %g of %d training rows): no test metrics",
                    cfg.test_fraction, train_m["rows"])
        test_m = None
    w, b = weights_of(model)
    metrics: dict[str, Any] = {
        "train": train_m,
        "test": test_m,
        "iterations": iterations,
        "stopped": stop_reason(cfg, iterations),
        "seconds": seconds,
        "seconds_per_iteration": progress.seconds_per_iteration(),
        "loss_history": history,
        "config": cfg.as_dict(),
        "features": names,
        "weights": w.tolist(),
        "intercept": b.tolist() if isinstance(b, np.ndarray) else b,
        "bad_rows": report,
        "versions": {"sparkgd": __version__, "spark": spark.version},
    }
    if truth is not None:
        metrics["true_model"] = truth
        centered = w - w.mean(axis=0) if w.ndim == 2 else w  # softmax is shift invariant: compare the centered
        metrics["weight_error_max"] = float(np.max(np.abs(centered - np.asarray(truth["weights"]))))
    return JobResult(model, metrics, history)


def output_in_use(output: str, sc: Any) -> list[str]:
    """The names in ``output`` (empty when it does not exist or is an empty directory)."""
    import os

    from sparkgd.engine import fs

    if not fs.is_local(output):
        return fs.HadoopDirs(sc).names(output)
    from sparkgd.core.persistence import local_path

    path = str(local_path(output))
    if os.path.isdir(path):
        return sorted(os.listdir(path))
    return [os.path.basename(path)] if os.path.exists(path) else []


def check_output(output: str, overwrite: bool, sc: Any) -> None:
    """Refuse (``FileExistsError``) a non-empty ``output`` unless ``overwrite``: an earlier run's model is never
    replaced without being asked."""
    held = output_in_use(output, sc)
    if held and not overwrite:
        shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
        raise FileExistsError(f"--output {output!r} is not empty (it holds {shown}); "
                              "use --overwrite to replace it, or another --output")


def stop_reason(cfg: JobConfig, iterations: int) -> str:
    """Why training ended, in words."""
    if iterations >= cfg.iterations:
        return f"reached --iterations {cfg.iterations}"
    if cfg.validation_fraction > 0:
        return (f"early stopping: the held-out loss did not improve by --convergence-tol for "
                f"--n-iter-no-change {cfg.n_iter_no_change} iterations")
    if cfg.optimizer == "lbfgs":
        return "converged: no L-BFGS step decreased the objective further, or the weights changed less than " \
               "--convergence-tol"
    return f"converged: the weights changed by less than --convergence-tol {cfg.convergence_tol:g} (relative)"


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity, at any depth, replaced by ``None`` (JSON's null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def save(result: JobResult, output: str, sc: Any, overwrite: bool = False) -> list[str]:
    """``model/`` (loadable by the library), ``metrics.json`` and ``loss.png`` under ``output``; the names written.

    A non-empty ``output`` is refused unless ``overwrite`` (:func:`check_output`).

    The model and the metrics come first; the plot needs matplotlib (``sparkgd[job]``) and is
    skipped with a one-line warning without it. An ``output`` URI other than ``file:``
    (``hdfs://``, ``s3a://``, ...) is written locally, then moved there through Hadoop's FileSystem.
    """
    import os

    from sparkgd.engine import fs

    check_output(output, overwrite, sc)
    if not fs.is_local(output):
        written: list[str] = []
        fs.publish(sc, lambda local: written.extend(save(result, str(local), sc)), output, overwrite=overwrite)
        return written
    from sparkgd.core.persistence import local_path

    output = str(local_path(output))

    os.makedirs(output, exist_ok=True)
    model_dir = os.path.join(output, "model")
    if hasattr(result.model, "write"):
        result.model.write().overwrite().save(model_dir)
    else:
        result.model.save(sc, model_dir, overwrite=True)
    with open(os.path.join(output, "metrics.json"), "w") as f:
        json.dump(finite(json.loads(json.dumps(result.metrics, default=_jsonable))), f, indent=2, allow_nan=False)
    try:
        from sparkgd.job.plots import plot_loss
    except ImportError as e:
        log.warning("loss.png not written: %s (pip install 'sparkgd[job]')", e)
        return ["model", "metrics.json"]
    cfg = result.metrics["config"]
    ylabel = {"squared": "loss: mean of (prediction - label)^2 / 2",
              "huber": f"loss: mean Huber loss (epsilon {cfg['epsilon']})",
              "multinomial": "loss: mean cross-entropy (nats)", "logistic": "loss: mean log loss (nats)",
              "hinge": "loss: mean hinge loss"}[cfg["loss"]]
    plot_loss(result.loss_history, os.path.join(output, "loss.png"), ylabel=ylabel,
              title=f"sparkgd training loss ({cfg['loss']}, {cfg['api']} API, "
                    f"mini-batch fraction {cfg['mini_batch_fraction']})")
    return ["model", "metrics.json", "loss.png"]


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)
