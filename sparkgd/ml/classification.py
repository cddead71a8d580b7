"""``SGDLogisticRegression`` (binomial or multinomial) and ``SGDLinearSVC`` by mini-batch SGD."""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark import keyword_only
from pyspark.ml.classification import ClassificationModel, Classifier
from pyspark.ml.functions import array_to_vector
from pyspark.ml.linalg import DenseMatrix, DenseVector, Vector, VectorUDT
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasProbabilityCol, HasThreshold
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkgd.core.gradients import Gradient, HingeGradient, LogisticGradient, MultinomialGradient
from sparkgd.engine.blocks import BlockedData
from sparkgd.ml.base import _SGDEstimator, _SGDModel, check_column
from sparkgd.ml.params import _SGDParams, _SGDSetters
from sparkgd.ml.summary import SGDClassificationSummary, SGDClassificationTrainingSummary


class _SGDClassifierMixin(_SGDSetters):
    """Setters shared by both classifiers."""

    def setThreshold(self, value: float):
        return self._set(threshold=value)


FAMILIES = ("auto", "binomial", "multinomial")


class _LogisticParams(_SGDParams, HasThreshold, HasProbabilityCol):
    family: Param[str] = Param(Params._dummy(), "family",
                               "auto (binomial for at most 2 classes, else multinomial), binomial or multinomial",
                               typeConverter=TypeConverters.toString)

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._setDefault(threshold=0.5, family="auto")

    def getFamily(self) -> str:
        return self.getOrDefault(self.family)

    def _check_ranges(self) -> None:
        super()._check_ranges()
        if self.getFamily() not in FAMILIES:
            raise ValueError(f"param family must be one of {', '.join(FAMILIES)}, got {self.getFamily()!r}")

    def _threshold_ok(self, v: float) -> bool:
        return 0.0 <= v <= 1.0

    def _threshold_range(self) -> str:
        return "in [0, 1]"


class _SVCParams(_SGDParams):
    threshold: Param[float] = Param(Params._dummy(), "threshold",
                                    "threshold on the raw margin: class 1 when the margin exceeds it",
                                    typeConverter=TypeConverters.toFloat)

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._setDefault(threshold=0.0)

    def getThreshold(self) -> float:
        return self.getOrDefault(self.threshold)


class SGDLogisticRegression(_SGDEstimator, _SGDClassifierMixin, Classifier, _LogisticParams):
    r"""Logistic regression trained by distributed mini-batch SGD.

    Binomial (labels 0/1): minimizes the weighted mean of :math:`\log(1 + e^{m_i}) - y_i m_i` with
    :math:`m_i = w \cdot x_i + b`, plus the elastic-net penalty on :math:`w`.

    Multinomial (labels :math:`0 .. K-1`; ``family="multinomial"``, or ``"auto"`` with more than 2
    classes): Spark ML's parametrization without a pivot class, one coefficient vector and intercept
    per class, minimizing the weighted mean of :math:`\log \sum_k e^{m_{ik}} - m_{i y_i}` with
    :math:`m_{ik} = w_k \cdot x_i + b_k`, plus the elastic-net penalty on the :math:`K \times d`
    matrix (the intercepts are not penalized). ``numClasses`` is the label column's count of
    values when its metadata declares one (``StringIndexer``), else the largest label + 1. The
    intercepts start at 0 and are centered (sum 0) after training, as are the coefficients of
    each feature when ``regParam`` is 0, as Spark ML does: the objective does not change.

    Examples
    --------
    >>> from pyspark.ml.linalg import Vectors
    >>> df = spark.createDataFrame([(float(x > 0), Vectors.dense([x])) for x in range(-5, 6)],
    ...                            ["label", "features"])
    >>> model = SGDLogisticRegression(maxIter=30).fit(df)
    >>> [r.prediction for r in model.transform(df).select("prediction").collect()][4:7]
    [0.0, 0.0, 1.0]
    """

    _gradient = LogisticGradient()
    _binary = True

    @keyword_only
    def __init__(self, *, featuresCol: str = "features", labelCol: str = "label",
                 predictionCol: str = "prediction", rawPredictionCol: str = "rawPrediction",
                 probabilityCol: str = "probability", maxIter: int = 100, stepSize: float = 1.0,
                 miniBatchFraction: float = 1.0, regParam: float = 0.0, elasticNetParam: float = 0.0,
                 tol: float = 0.001, fitIntercept: bool = True, standardization: bool = True, seed: int = 42,
                 aggregationDepth: int = 2, weightCol: str | None = None, checkpointDir: str | None = None,
                 checkpointInterval: int = 10, resume: bool = False,
                 optimizer: str = "sgd", stepSchedule: str = "invsqrt", momentum: float = 0.9,
                 beta1: float = 0.9, beta2: float = 0.999, adaptiveEpsilon: float = 1e-8, powerT: float = 0.5,
                 decayRate: float = 0.5, decaySteps: int = 20, warmupSteps: int = 0, averageFrom: int = 0,
                 validationFraction: float = 0.0, nIterNoChange: int = 5, threshold: float = 0.5,
                 family: str = "auto") -> None:
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, featuresCol: str = "features", labelCol: str = "label",
                  predictionCol: str = "prediction", rawPredictionCol: str = "rawPrediction",
                  probabilityCol: str = "probability", maxIter: int = 100, stepSize: float = 1.0,
                  miniBatchFraction: float = 1.0, regParam: float = 0.0, elasticNetParam: float = 0.0,
                  tol: float = 0.001, fitIntercept: bool = True, standardization: bool = True, seed: int = 42,
                  aggregationDepth: int = 2, weightCol: str | None = None, checkpointDir: str | None = None,
                  checkpointInterval: int = 10, resume: bool = False,
                  optimizer: str = "sgd", stepSchedule: str = "invsqrt", momentum: float = 0.9,
                  beta1: float = 0.9, beta2: float = 0.999, adaptiveEpsilon: float = 1e-8, powerT: float = 0.5,
                  decayRate: float = 0.5, decaySteps: int = 20, warmupSteps: int = 0, averageFrom: int = 0,
                  validationFraction: float = 0.0, nIterNoChange: int = 5,
                  threshold: float = 0.5, family: str = "auto") -> SGDLogisticRegression:
        return self._set(**self._input_kwargs)

    def setProbabilityCol(self, value: str) -> SGDLogisticRegression:
        return self._set(probabilityCol=value)

    def setFamily(self, value: str) -> SGDLogisticRegression:
        return self._set(family=value)

    @property
    def _model_class(self) -> type:
        return SGDLogisticRegressionModel

    def _training_gradient(self, blocks: BlockedData, dataset: DataFrame) -> Gradient:
        family = self.getFamily()
        if family != "binomial":
            k = blocks.check_class_labels(declared_classes(dataset, self.getLabelCol()))
            if family == "multinomial" or k > 2:
                return MultinomialGradient(max(k, 2))
        blocks.check_binary_labels()
        return self._gradient

    def _make_model(self, w: np.ndarray, k: int, d: int, fit_intercept: bool, scale: np.ndarray | None) -> Any:
        if k == 1:
            return super()._make_model(w, k, d, fit_intercept, scale)
        matrix = w[:k * d].reshape(k, d)
        if scale is not None:
            matrix = matrix * scale
        if self.getRegParam() == 0.0:  # softmax is shift invariant: Spark ML's centered representative
            matrix = matrix - matrix.mean(axis=0)
        intercepts = w[k * d:] - w[k * d:].mean() if fit_intercept else np.zeros(k)
        return SGDLogisticRegressionModel._multinomial(matrix, intercepts)


def declared_classes(dataset: DataFrame, label: str) -> int | None:
    """The number of classes the label column's ML attribute metadata declares (``StringIndexer``'s), if any."""
    attr = dataset.schema[label].metadata.get("ml_attr", {})
    if attr.get("type") != "nominal":
        return None
    if "num_vals" in attr:
        return int(attr["num_vals"])
    return len(attr["vals"]) if "vals" in attr else None


class SGDLinearSVC(_SGDEstimator, _SGDClassifierMixin, Classifier, _SVCParams):
    r"""Linear SVM (hinge loss, labels 0/1) trained by distributed mini-batch SGD.

    Minimizes the weighted mean of :math:`\max(0, 1 - s_i m_i)`, :math:`s_i = 2y_i - 1`,
    plus the elastic-net penalty on :math:`w`. ``threshold`` applies to the raw margin.

    Examples
    --------
    >>> from pyspark.ml.linalg import Vectors
    >>> df = spark.createDataFrame([(float(x > 0), Vectors.dense([x])) for x in range(-5, 6)],
    ...                            ["label", "features"])
    >>> model = SGDLinearSVC(maxIter=30).fit(df)
    >>> model.predict(Vectors.dense([3.0])), model.predict(Vectors.dense([-3.0]))
    (1.0, 0.0)
    """

    _gradient = HingeGradient()
    _binary = True

    @keyword_only
    def __init__(self, *, featuresCol: str = "features", labelCol: str = "label",
                 predictionCol: str = "prediction", rawPredictionCol: str = "rawPrediction",
                 maxIter: int = 100, stepSize: float = 1.0, miniBatchFraction: float = 1.0, regParam: float = 0.0,
                 elasticNetParam: float = 0.0, tol: float = 0.001, fitIntercept: bool = True,
                 standardization: bool = True, seed: int = 42, aggregationDepth: int = 2,
                 weightCol: str | None = None, checkpointDir: str | None = None,
                 checkpointInterval: int = 10, resume: bool = False,
                 optimizer: str = "sgd", stepSchedule: str = "invsqrt", momentum: float = 0.9,
                 beta1: float = 0.9, beta2: float = 0.999, adaptiveEpsilon: float = 1e-8, powerT: float = 0.5,
                 decayRate: float = 0.5, decaySteps: int = 20, warmupSteps: int = 0, averageFrom: int = 0,
                 validationFraction: float = 0.0, nIterNoChange: int = 5, threshold: float = 0.0) -> None:
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, featuresCol: str = "features", labelCol: str = "label",
                  predictionCol: str = "prediction", rawPredictionCol: str = "rawPrediction",
                  maxIter: int = 100, stepSize: float = 1.0, miniBatchFraction: float = 1.0, regParam: float = 0.0,
                  elasticNetParam: float = 0.0, tol: float = 0.001, fitIntercept: bool = True,
                  standardization: bool = True, seed: int = 42, aggregationDepth: int = 2,
                  weightCol: str | None = None, checkpointDir: str | None = None,
                  checkpointInterval: int = 10, resume: bool = False,
                  optimizer: str = "sgd", stepSchedule: str = "invsqrt", momentum: float = 0.9,
                  beta1: float = 0.9, beta2: float = 0.999, adaptiveEpsilon: float = 1e-8, powerT: float = 0.5,
                  decayRate: float = 0.5, decaySteps: int = 20, warmupSteps: int = 0, averageFrom: int = 0,
                  validationFraction: float = 0.0, nIterNoChange: int = 5, threshold: float = 0.0) -> SGDLinearSVC:
        return self._set(**self._input_kwargs)

    @property
    def _model_class(self) -> type:
        return SGDLinearSVCModel


class _SGDClassificationModel(_SGDModel, ClassificationModel):
    _summary_class = SGDClassificationSummary
    _training_summary_class = SGDClassificationTrainingSummary

    def __init__(self, coefficients: Vector | None = None, intercept: float = 0.0) -> None:
        super().__init__()
        self._init_model(coefficients, intercept)

    @property
    def numClasses(self) -> int:
        return 2

    def setThreshold(self, value: float):
        return self._set(threshold=value)

    def predictRaw(self, value: Vector) -> DenseVector:
        m = self._margin(value)
        return DenseVector([-m, m])

    def _transform(self, dataset: DataFrame) -> DataFrame:
        m = "__sparkgd_margin"
        out = dataset.withColumn(m, self._margin_column(dataset))
        raw_col = self.getRawPredictionCol()
        if raw_col:
            out = out.withColumn(raw_col, array_to_vector(F.array(-F.col(m), F.col(m))))
        out = self._more_columns(out, F.col(m))
        return _nominal_prediction(out.drop(m), self.getPredictionCol(), self.numClasses)


class SGDLogisticRegressionModel(_SGDClassificationModel, _LogisticParams):
    """A fitted :class:`SGDLogisticRegression`.

    Binomial: ``probability`` is the sigmoid of the margin. Multinomial: ``rawPrediction`` holds
    the ``numClasses`` margins, ``probability`` their softmax and ``prediction`` the most probable
    class; ``coefficientMatrix`` and ``interceptVector`` hold the model (``coefficients`` and
    ``intercept`` are for binomial models only, as in Spark ML).
    """

    @classmethod
    def _multinomial(cls, matrix: np.ndarray, intercepts: np.ndarray) -> SGDLogisticRegressionModel:
        model = cls()
        model._matrix = np.ascontiguousarray(matrix, dtype=np.float64)  # row-major: the same products when loaded
        model._intercepts = np.array(intercepts, dtype=np.float64)
        return model

    @property
    def isMultinomial(self) -> bool:
        return self._matrix is not None

    @property
    def numClasses(self) -> int:
        return self._matrix.shape[0] if self.isMultinomial else 2

    @property
    def coefficientMatrix(self) -> DenseMatrix:
        """``numClasses x numFeatures`` (multinomial) or ``1 x numFeatures`` (binomial)."""
        m = self._matrix if self.isMultinomial else self._coefficients.toArray()[None, :]
        return DenseMatrix(m.shape[0], m.shape[1], m.ravel(order="F").tolist())

    @property
    def interceptVector(self) -> DenseVector:
        return DenseVector(self._intercepts if self.isMultinomial else [self._intercept])

    @property
    def coefficients(self) -> DenseVector:
        if self.isMultinomial:
            raise RuntimeError("Multinomial models contain a matrix of coefficients, use coefficientMatrix instead.")
        return self._coefficients

    @property
    def intercept(self) -> float:
        if self.isMultinomial:
            raise RuntimeError("Multinomial models contain a vector of intercepts, use interceptVector instead.")
        return self._intercept

    def setProbabilityCol(self, value: str) -> SGDLogisticRegressionModel:
        return self._set(probabilityCol=value)

    def predictRaw(self, value: Vector) -> DenseVector:
        if not self.isMultinomial:
            return super().predictRaw(value)
        return DenseVector(_margins(self._matrix, self._intercepts, value))

    def predictProbability(self, value: Vector) -> DenseVector:
        if self.isMultinomial:
            return DenseVector(_softmax(self.predictRaw(value).toArray()))
        p = 1.0 / (1.0 + float(__import__("math").exp(-self._margin(value))))
        return DenseVector([1.0 - p, p])

    def predict(self, value: Vector) -> float:
        if self.isMultinomial:
            return float(np.argmax(self.predictRaw(value).toArray()))
        return float(self.predictProbability(value)[1] > self.getThreshold())

    def _transform(self, dataset: DataFrame) -> DataFrame:
        if not self.isMultinomial:
            return super()._transform(dataset)
        feats = self.getFeaturesCol()
        check_column(dataset, feats, "featuresCol", "vector")
        matrix, intercepts = self._matrix, self._intercepts

        def raw(v):  # no type hints: they would make Spark look for a pandas UDF
            return None if v is None else DenseVector(_margins(matrix, intercepts, v))

        def probability(r):
            return None if r is None else DenseVector(_softmax(r.toArray()))

        def prediction(r):
            return None if r is None else float(np.argmax(r.toArray()))

        tmp = "__sparkgd_raw"
        out = dataset.withColumn(tmp, F.udf(raw, VectorUDT(), useArrow=False)(F.col(feats)))
        if self.getRawPredictionCol():
            out = out.withColumn(self.getRawPredictionCol(), F.col(tmp))
        if self.getProbabilityCol():
            out = out.withColumn(self.getProbabilityCol(), F.udf(probability, VectorUDT(), useArrow=False)(F.col(tmp)))
        if self.getPredictionCol():
            out = out.withColumn(self.getPredictionCol(), F.udf(prediction, "double", useArrow=False)(F.col(tmp)))
        return _nominal_prediction(out.drop(tmp), self.getPredictionCol(), self.numClasses)

    def _more_columns(self, out: DataFrame, margin) -> DataFrame:
        p = 1.0 / (1.0 + F.exp(-margin))
        if self.getProbabilityCol():
            out = out.withColumn(self.getProbabilityCol(), array_to_vector(F.array(1.0 - p, p)))
        if self.getPredictionCol():
            out = out.withColumn(self.getPredictionCol(), (p > self.getThreshold()).cast("double"))
        return out


def _nominal_prediction(out: DataFrame, column: str, num_classes: int) -> DataFrame:
    """The prediction column with Spark ML's attribute metadata: a nominal attribute of ``num_classes`` values."""
    if not column:
        return out
    meta = {"ml_attr": {"type": "nominal", "num_vals": num_classes}}
    return out.withColumn(column, F.col(column).alias(column, metadata=meta))


def _margins(matrix: np.ndarray, intercepts: np.ndarray, v: Vector) -> np.ndarray:
    if v.size != matrix.shape[1]:
        raise ValueError(f"expected {matrix.shape[1]} features, got a vector of size {v.size}")
    if hasattr(v, "indices"):
        return matrix[:, np.asarray(v.indices, dtype=np.int64)] @ np.asarray(v.values) + intercepts
    return matrix @ v.toArray() + intercepts


def _softmax(m: np.ndarray) -> np.ndarray:
    e = np.exp(m - m.max())
    return e / e.sum()


class SGDLinearSVCModel(_SGDClassificationModel, _SVCParams):
    """A fitted :class:`SGDLinearSVC`: class 1 when the margin exceeds ``threshold``."""

    def predict(self, value: Vector) -> float:
        return float(self._margin(value) > self.getThreshold())

    def _more_columns(self, out: DataFrame, margin) -> DataFrame:
        if self.getPredictionCol():
            out = out.withColumn(self.getPredictionCol(), (margin > self.getThreshold()).cast("double"))
        return out
