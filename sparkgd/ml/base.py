"""What sparkgd's DataFrame estimators and models share: input checks, training on the
engine, prediction columns, summaries and persistence.

Spark ML conventions, not MLlib's: the intercept is not regularized, ``standardization``
trains on features divided by their standard deviation and, with ``fitIntercept``, centred at
their mean (virtually, as Spark ML's aggregators do: sparse data stays sparse; the penalty
applies to the scaled coefficients, as in Spark ML) and reports coefficients on the original
scale, and
``weightCol`` weights each row's loss and gradient. The starting point is MLlib's (zero
coefficients, intercept 1.0), so that this API and :mod:`sparkgd.rdd` give the same model
whenever their objectives agree.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from typing import Any

import numpy as np
from pyspark.ml.linalg import DenseMatrix, DenseVector, MatrixUDT, Vector, VectorUDT
from pyspark.ml.util import (
    DefaultParamsReadable,
    DefaultParamsReader,
    DefaultParamsWritable,
    DefaultParamsWriter,
    MLReadable,
    MLReader,
    MLWritable,
    MLWriter,
)
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DoubleType, NumericType, StructField, StructType

from sparkgd.core.gradients import Gradient
from sparkgd.core.updaters import ElasticNetUpdater
from sparkgd.engine import _spark
from sparkgd.engine._spark import is_remote
from sparkgd.engine.arrow import build_block_from_batches, record_batches
from sparkgd.engine.blocks import BlockedData, build_for_call, feature_mean_std
from sparkgd.engine.loop import descend
from sparkgd.engine.remote import RemoteBlocks
from sparkgd.engine.reuse import blocks_for
from sparkgd.engine.turns import training_call

FORMAT_VERSION = 1


def check_column(dataset: DataFrame, name: str, param: str, kind: str) -> None:
    """Raise ``ValueError`` when column ``name`` (param ``param``) is missing or of the wrong type."""
    fields = {f.name: f.dataType for f in dataset.schema.fields}
    if name not in fields:
        raise ValueError(f"{param} column {name!r} is not in the DataFrame (columns: {sorted(fields)})")
    dt = fields[name]
    if kind == "vector" and not isinstance(dt, VectorUDT):
        raise ValueError(f"{param} column {name!r} must be a vector column (VectorUDT, e.g. from VectorAssembler), "
                         f"got {dt.simpleString()}")
    if kind == "numeric" and not isinstance(dt, NumericType):
        raise ValueError(f"{param} column {name!r} must be numeric, got {dt.simpleString()}")


class _SGDEstimator(DefaultParamsWritable, DefaultParamsReadable):
    """Mixin for the estimators: ``_fit`` trains on the engine; the params save and load as Spark ML's
    (``DefaultParamsWritable``), so unfitted Pipelines, CrossValidators and OneVsRest models save too."""

    _gradient: Gradient
    _binary: bool = False

    def _training_gradient(self, blocks: BlockedData, dataset: DataFrame) -> Gradient:
        """The loss to train with, once the labels are checked for it."""
        if self._binary:
            blocks.check_binary_labels()
        return self._gradient

    def _make_model(self, w: np.ndarray, k: int, d: int, fit_intercept: bool, scale: np.ndarray | None) -> Any:
        """The model of the trained weights (on the standardized scale when ``scale`` is given)."""
        coef = w[:d] if scale is None else w[:d] * scale
        return self._model_class(coefficients=DenseVector(coef), intercept=float(w[d]) if fit_intercept else 0.0)

    def _fit(self, dataset: DataFrame) -> Any:
        self._check_ranges()
        label, feats = self.getLabelCol(), self.getFeaturesCol()
        wcol = self.getOrDefault(self.weightCol) if self.isDefined(self.weightCol) else None
        wcol = wcol or None
        check_column(dataset, feats, "featuresCol", "vector")
        check_column(dataset, label, "labelCol", "numeric")
        cols = [F.col(label).cast("double"), F.col(feats)]
        if wcol:
            check_column(dataset, wcol, "weightCol", "numeric")
            cols.append(F.col(wcol).cast("double"))
        names = (f"column {label!r}", f"column {feats!r}", f"column {wcol!r}" if wcol else "weight")
        moments = self.getStandardization()

        def build() -> BlockedData | RemoteBlocks:
            if is_remote():
                return RemoteBlocks(dataset.select(*cols), names, moments)
            batches, schema = record_batches(dataset.select(*cols))
            return build_for_call(batches, columns=names, moments=moments,
                                  build=functools.partial(build_block_from_batches, schema=schema))

        variant, used = (label, feats, wcol, moments), [label, feats] + ([wcol] if wcol else [])
        with training_call(), blocks_for(dataset, build, variant, used) as blocks:
            d = blocks.num_features
            if d is None:
                raise ValueError("the training DataFrame has no rows")
            gradient = self._training_gradient(blocks, dataset)
            scale = center = None
            fit_intercept = self.getFitIntercept()
            if self.getStandardization():
                mean, std = feature_mean_std(blocks)
                scale = np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 0.0)
                center = mean if fit_intercept else None  # Spark ML's virtual centring (SPARK-34448)
            k = gradient.num_sets
            w0 = np.zeros(k * (d + fit_intercept))
            penalized = None
            if fit_intercept:
                if k == 1:
                    w0[-1] = 1.0  # as MLlib; K intercepts start at 0
                penalized = np.arange(len(w0)) < k * d
            g = self.getOrDefault
            updater, optimizer = ElasticNetUpdater(self.getElasticNetParam()), self._optimizer()
            iterations = self.getMaxIter()
            state, online = None, getattr(self, "_online", None)
            if online is not None:  # sparkgd.ml.streaming: go on from the previous micro-batch's state
                state = online.start(w0, updater.regularization(w0, self.getRegParam(), penalized),
                                     optimizer.init(w0), (k, d))
                iterations += state.iteration
            result = descend(
                blocks, gradient, updater, w0, optimizer=optimizer, state=state,
                step_size=self._schedule(), num_iterations=iterations, reg_param=self.getRegParam(),
                average_from=g(self.averageFrom), validation_fraction=g(self.validationFraction),
                n_iter_no_change=g(self.nIterNoChange),
                mini_batch_fraction=self.getMiniBatchFraction(), convergence_tol=self.getTol(),
                seed=self.getSeed(), aggregation_depth=self.getAggregationDepth(), fit_intercept=fit_intercept,
                scale=scale, center=center, penalized=penalized, callback=getattr(self, "_callback", None),
                checkpoint_dir=self.getOrDefault(self.checkpointDir) if self.isDefined(self.checkpointDir) else None,
                checkpoint_interval=self.getCheckpointInterval(), resume=self.getOrDefault(self.resume))
        model = self._make_model(result.weights, k, d, fit_intercept, scale)
        self._copyValues(model)
        model._training = (list(result.loss_history), result.num_iterations, dataset)
        return model


class _SGDModel(MLWritable, MLReadable):
    """Mixin for the models: coefficients, prediction columns, summary, persistence."""

    _summary_class: type
    _training_summary_class: type

    def _init_model(self, coefficients: Vector | None, intercept: float) -> None:
        self._coefficients = DenseVector(np.asarray(coefficients.toArray() if coefficients is not None else [],
                                                    dtype=np.float64))
        self._intercept = float(intercept)
        self._matrix: np.ndarray | None = None  # multinomial: K x d coefficients and K intercepts
        self._intercepts: np.ndarray | None = None
        self._training: tuple[list[float], int, DataFrame | None] | None = None

    @property
    def coefficients(self) -> DenseVector:
        """Model coefficients, on the scale of the original features."""
        return self._coefficients

    @property
    def intercept(self) -> float:
        return self._intercept

    @property
    def numFeatures(self) -> int:
        return len(self._coefficients) if self._matrix is None else self._matrix.shape[1]

    def _margin(self, value: Vector) -> float:
        return float(value.dot(self._coefficients)) + self._intercept

    def _margin_column(self, dataset: DataFrame):
        check_column(dataset, self.getFeaturesCol(), "featuresCol", "vector")
        coef, b, d = self._coefficients, self._intercept, self.numFeatures

        def margin(v):  # no type hints: they would make Spark look for a pandas UDF
            if v is None:
                return None
            if v.size != d:
                raise ValueError(f"expected {d} features, got a vector of size {v.size}")
            return float(v.dot(coef)) + b

        return F.udf(margin, DoubleType(), useArrow=False)(F.col(self.getFeaturesCol()))

    @property
    def hasSummary(self) -> bool:
        return self._training is not None and self._training[2] is not None

    @property
    def summary(self):
        """Metrics on the training data, ``objectiveHistory`` and ``totalIterations``."""
        if not self.hasSummary:
            raise RuntimeError(f"no training summary available for this {type(self).__name__}")
        history, iters, data = self._training
        s = self._make_summary(self._training_summary_class, data)
        s.objectiveHistory, s.totalIterations = history, iters
        return s

    def evaluate(self, dataset: DataFrame):
        """The summary's metrics on ``dataset``."""
        return self._make_summary(self._summary_class, dataset)

    def _make_summary(self, cls: type, dataset: DataFrame):
        wcol = self.getOrDefault(self.weightCol) if self.isDefined(self.weightCol) else None
        pred = self.getPredictionCol() or "prediction"
        model = self.copy().setPredictionCol(pred)
        raw = prob = None
        if self.hasParam("rawPredictionCol"):
            raw = self.getOrDefault(self.getParam("rawPredictionCol")) or "rawPrediction"
            model._set(rawPredictionCol=raw)
        if self.hasParam("probabilityCol"):
            prob = self.getOrDefault(self.getParam("probabilityCol")) or "probability"
            model._set(probabilityCol=prob)
        return cls(model.transform(dataset), self.getLabelCol(), pred, wcol or None, raw, probability_col=prob,
                   num_features=self.numFeatures, fit_intercept=self.getFitIntercept(),
                   num_classes=getattr(self, "numClasses", 2))

    def copy(self, extra: dict | None = None):
        that = super().copy(extra)
        that._coefficients, that._intercept = self._coefficients, self._intercept
        that._matrix, that._intercepts = self._matrix, self._intercepts
        that._training = self._training
        return that

    def write(self) -> MLWriter:
        return _SGDModelWriter(self)

    @classmethod
    def read(cls) -> MLReader:
        return _SGDModelReader(cls)

    def __repr__(self) -> str:
        return f"{type(self).__name__}: uid={self.uid}, numFeatures={self.numFeatures}"


_DATA_SCHEMA = StructType([
    StructField("intercept", DoubleType(), False),
    StructField("coefficients", VectorUDT(), False),
    StructField("objectiveHistory", ArrayType(DoubleType()), False),
    StructField("coefficientMatrix", MatrixUDT(), True),  # multinomial models only (then coefficients is empty)
    StructField("interceptVector", VectorUDT(), True),
])


class _SGDModelWriter(MLWriter):
    """``metadata/`` (JSON, Spark's DefaultParamsWriter) and ``data/`` (one Parquet row).

    A local destination is written into a temporary sibling directory and renamed into place.
    """

    def __init__(self, instance: _SGDModel) -> None:
        super().__init__()
        self.instance = instance

    def save(self, path: str) -> None:
        if is_remote():  # the Connect server writes, on its filesystem: no client-side rename
            return self.saveImpl(path, mode="overwrite" if self.shouldOverwrite else "error")
        local = _local(path)
        if local is None:  # hdfs://, s3a://, ...: Spark writes a hidden sibling, Hadoop renames it into place
            from sparkgd.engine import fs

            return fs.publish_uri(self.sparkSession.sparkContext, self.saveImpl, path, self.shouldOverwrite)
        if os.path.exists(local) and not self.shouldOverwrite:
            raise FileExistsError(f"path {path!r} already exists; use write().overwrite().save(path)")
        parent = os.path.dirname(os.path.abspath(local))
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{os.path.basename(local)}.tmp-{uuid.uuid4().hex}")
        try:
            self.saveImpl(tmp)
            old = None
            if os.path.exists(local):
                old = os.path.join(parent, f".{os.path.basename(local)}.old-{uuid.uuid4().hex}")
                os.rename(local, old)
            os.rename(tmp, local)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def saveImpl(self, path: str, mode: str = "error") -> None:
        m = self.instance
        history = m._training[0] if m._training else []
        iters = m._training[1] if m._training else 0
        extra = {"sparkgdFormatVersion": FORMAT_VERSION, "numFeatures": m.numFeatures, "totalIterations": iters}
        spark = self.sparkSession
        if is_remote():  # DefaultParamsWriter's metadata, written with the mode asked
            meta = _spark.params_metadata(m, spark, extra)
            metadata = spark.createDataFrame([(meta,)], ["value"]).coalesce(1)
            metadata.write.mode(mode).text(os.path.join(path, "metadata"))
        else:
            DefaultParamsWriter.saveMetadata(m, path, self.sc, extraMetadata=extra)
        row = (m._intercept, m._coefficients, [float(v) for v in history], None, None)
        if m._matrix is not None:
            k, d = m._matrix.shape
            row = row[:3] + (DenseMatrix(k, d, m._matrix.ravel(order="F").tolist()), DenseVector(m._intercepts))
        spark.createDataFrame([row], _DATA_SCHEMA).coalesce(1).write.mode(mode).parquet(os.path.join(path, "data"))


def _local(path: str) -> str | None:
    """The local path of ``path`` (a plain path or a ``file:`` URI), or ``None`` for other filesystems."""
    from sparkgd.core.persistence import local_path

    if "://" in path and not path.startswith("file:"):
        return None
    return os.path.abspath(local_path(path))  # relative to this process's directory, for Spark's readers too


class _SGDModelReader(MLReader):
    def __init__(self, cls: type) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> Any:
        from sparkgd.core.persistence import ModelFormatError

        path = _local(path) or path  # Hadoop refuses file://localhost/...: read local paths as plain paths

        try:
            meta = DefaultParamsReader.loadMetadata(path, self.sparkSession if is_remote() else self.sc)
        except Exception as e:  # py4j / Hadoop errors for a missing or unreadable path
            raise ModelFormatError(f"{path!r} is not a readable sparkgd model: {str(e).splitlines()[0]}") from None
        expected = f"{self.cls.__module__}.{self.cls.__name__}"
        if meta.get("class") != expected:
            raise ModelFormatError(f"{path}: holds a {meta.get('class')!r}, expected {expected}")
        if meta.get("sparkgdFormatVersion") != FORMAT_VERSION:
            raise ModelFormatError(f"{path}: format version {meta.get('sparkgdFormatVersion')!r} is not supported")
        rows = self.sparkSession.read.schema(_DATA_SCHEMA).parquet(os.path.join(path, "data")).collect()
        if len(rows) != 1 or rows[0]["coefficients"] is None:
            raise ModelFormatError(f"{path}/data: expected one row of model data, found {len(rows)}")
        coef, matrix = rows[0]["coefficients"], rows[0]["coefficientMatrix"]
        if matrix is not None:
            intercepts = rows[0]["interceptVector"]
            if (matrix.numCols != meta.get("numFeatures") or intercepts is None or intercepts.size != matrix.numRows
                    or not np.isfinite(matrix.toArray()).all() or not hasattr(self.cls, "_multinomial")):
                raise ModelFormatError(f"{path}/data: a {matrix.numRows} x {matrix.numCols} coefficient matrix does "
                                       f"not fit its intercepts or the metadata's {meta.get('numFeatures')} features")
            model = self.cls._multinomial(matrix.toArray(), intercepts.toArray())
        elif coef.size != meta.get("numFeatures") or not np.isfinite(coef.toArray()).all():
            raise ModelFormatError(f"{path}/data: {coef.size} coefficients, metadata says {meta.get('numFeatures')}")
        else:
            model = self.cls(coefficients=DenseVector(coef.toArray()), intercept=rows[0]["intercept"])
        DefaultParamsReader.getAndSetParams(model, meta)
        _spark.reset_uid(model, meta["uid"])
        model._training = (list(rows[0]["objectiveHistory"]), int(meta.get("totalIterations", 0)), None)
        return model
