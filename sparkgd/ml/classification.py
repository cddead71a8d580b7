"""``SGDLogisticRegression`` and ``SGDLinearSVC``: binary classifiers by mini-batch SGD."""

from __future__ import annotations

from pyspark import keyword_only
from pyspark.ml.classification import ClassificationModel, Classifier
from pyspark.ml.functions import array_to_vector
from pyspark.ml.linalg import DenseVector, Vector
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasProbabilityCol, HasThreshold
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkgd.core.gradients import HingeGradient, LogisticGradient
from sparkgd.ml.base import _SGDEstimator, _SGDModel
from sparkgd.ml.params import _SGDParams, _SGDSetters
from sparkgd.ml.summary import SGDClassificationSummary, SGDClassificationTrainingSummary


class _SGDClassifierMixin(_SGDSetters):
    """Setters shared by both classifiers."""

    def setThreshold(self, value: float):
        return self._set(threshold=value)


class _LogisticParams(_SGDParams, HasThreshold, HasProbabilityCol):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._setDefault(threshold=0.5)

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
    r"""Binary logistic regression (labels 0/1) trained by distributed mini-batch SGD.

    Minimizes the weighted mean of :math:`\log(1 + e^{m_i}) - y_i m_i` with
    :math:`m_i = w \cdot x_i + b`, plus the elastic-net penalty on :math:`w`.

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
                 validationFraction: float = 0.0, nIterNoChange: int = 5, threshold: float = 0.5) -> None:
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
                  threshold: float = 0.5) -> SGDLogisticRegression:
        return self._set(**self._input_kwargs)

    def setProbabilityCol(self, value: str) -> SGDLogisticRegression:
        return self._set(probabilityCol=value)

    @property
    def _model_class(self) -> type:
        return SGDLogisticRegressionModel


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
        return out.drop(m)


class SGDLogisticRegressionModel(_SGDClassificationModel, _LogisticParams):
    """A fitted :class:`SGDLogisticRegression`; ``probability`` is the sigmoid of the margin."""

    def setProbabilityCol(self, value: str) -> SGDLogisticRegressionModel:
        return self._set(probabilityCol=value)

    def predictProbability(self, value: Vector) -> DenseVector:
        p = 1.0 / (1.0 + float(__import__("math").exp(-self._margin(value))))
        return DenseVector([1.0 - p, p])

    def predict(self, value: Vector) -> float:
        return float(self.predictProbability(value)[1] > self.getThreshold())

    def _more_columns(self, out: DataFrame, margin) -> DataFrame:
        p = 1.0 / (1.0 + F.exp(-margin))
        if self.getProbabilityCol():
            out = out.withColumn(self.getProbabilityCol(), array_to_vector(F.array(1.0 - p, p)))
        if self.getPredictionCol():
            out = out.withColumn(self.getPredictionCol(), (p > self.getThreshold()).cast("double"))
        return out


class SGDLinearSVCModel(_SGDClassificationModel, _SVCParams):
    """A fitted :class:`SGDLinearSVC`: class 1 when the margin exceeds ``threshold``."""

    def predict(self, value: Vector) -> float:
        return float(self._margin(value) > self.getThreshold())

    def _more_columns(self, out: DataFrame, margin) -> DataFrame:
        if self.getPredictionCol():
            out = out.withColumn(self.getPredictionCol(), (margin > self.getThreshold()).cast("double"))
        return out
